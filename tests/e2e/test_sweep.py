"""`dicomweb-server sweep`: objects that no index row points to, and spool folders of killed processes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from dicomweb_server.config import load_settings
from dicomweb_server.storage.spool import Spool
from dicomweb_server.storage.store import ObjectStore, open_store
from tests.services import Archive, Backend
from tests.testdata import synthetic_ct, to_bytes

TWO_DAYS = 2 * 24 * 3600


def archive_store(archive: Archive) -> ObjectStore:
    return open_store(load_settings(environ=archive.settings_environment()))


async def write_orphan(store: ObjectStore, content: bytes) -> str:
    """Write an object the way ingest does and stop before the index row, as a crash would."""
    upload = await store.begin_upload()
    await upload.write(content)
    await upload.finish_writing()
    await upload.commit()
    return upload.key


def make_orphans(archive: Archive, *contents: bytes) -> list[str]:
    store = archive_store(archive)

    async def write_all() -> list[str]:
        return [await write_orphan(store, content) for content in contents]

    try:
        return asyncio.run(write_all())
    finally:
        store.close()


def object_keys(archive: Archive) -> set[str]:
    store = archive_store(archive)

    async def collect() -> set[str]:
        return {stored.key async for stored in store.list()}

    return asyncio.run(collect())


def store_instance(archive: Archive, patient_id: str, folder: Path) -> None:
    """Store one instance, so the index is not empty and contains an object the sweep must keep."""
    path = folder / "indexed.dcm"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(to_bytes(synthetic_ct(patient_id)))
    result = archive.run(["import", "--no-progress", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_sweep_removes_orphans(archive: Archive, patient_id: str, tmp_path: Path) -> None:
    store_instance(archive, patient_id, tmp_path)
    indexed = object_keys(archive)
    orphans = make_orphans(archive, b"a" * 1000, b"b" * 2000)

    dry_run = archive.run(["sweep", "--dry-run", "--grace-period", "0"])
    after_dry_run = object_keys(archive)
    swept = archive.run(["sweep", "--grace-period", "0"])

    assert dry_run.returncode == 0, dry_run.stderr
    assert "Would remove 2 objects (2.9 KiB, 3000 bytes)" in dry_run.stdout
    for key in orphans:
        assert key in dry_run.stdout
    assert after_dry_run == indexed | set(orphans)
    assert swept.returncode == 0, swept.stderr
    assert "Removed 2 objects (2.9 KiB, 3000 bytes)" in swept.stdout
    assert object_keys(archive) == indexed


def test_sweep_keeps_young_orphans(archive: Archive, patient_id: str, tmp_path: Path) -> None:
    store_instance(archive, patient_id, tmp_path)
    young = make_orphans(archive, b"young" * 100)

    swept = archive.run(["sweep"])
    swept_with_hour = archive.run(["sweep", "--grace-period", "1h"])

    assert swept.returncode == 0, swept.stderr
    assert "Removed 0 objects (0 bytes)" in swept.stdout
    assert "older than 24h." in swept.stdout
    assert swept_with_hour.returncode == 0, swept_with_hour.stderr
    assert "Removed 0 objects (0 bytes)" in swept_with_hour.stdout
    assert "older than 1h." in swept_with_hour.stdout
    assert set(young) <= object_keys(archive)


def test_sweep_grace_period_by_age(patient_id: str, tmp_path: Path) -> None:
    # Only a local folder lets the test age an object; S3 services set the modification time.
    archive = Archive(Backend("embedded"), tmp_path / "data")
    store_instance(archive, patient_id, tmp_path)
    old, young = make_orphans(archive, b"old" * 100, b"young" * 100)
    old_path = archive_store(archive).local_path(old)
    assert old_path is not None
    aged = time.time() - TWO_DAYS
    os.utime(old_path, (aged, aged))

    swept = archive.run(["sweep"])

    assert swept.returncode == 0, swept.stderr
    assert "Removed 1 object (300 bytes)" in swept.stdout
    keys = object_keys(archive)
    assert old not in keys
    assert young in keys


def test_sweep_rejects_empty_index(archive: Archive) -> None:
    orphans = make_orphans(archive, b"no index row" * 10)

    swept = archive.run(["sweep", "--grace-period", "0"])

    assert swept.returncode == 2
    assert "the index has no instances" in swept.stderr
    assert "DICOMWEB_INDEX_URL" in swept.stderr
    assert set(orphans) <= object_keys(archive)


def kill_with_spool_file(spool_root: Path, size: int) -> None:
    """Run a process that writes a spool file and is killed with SIGKILL, leaving its folder behind."""
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from dicomweb_server.storage.spool import Spool\n"
        "path = Spool(Path(sys.argv[1])).new_path()\n"
        "path.write_bytes(b'x' * int(sys.argv[2]))\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(spool_root), str(size)], check=False)
    assert result.returncode == -9


def test_sweep_removes_abandoned_spool(archive: Archive, patient_id: str, tmp_path: Path) -> None:
    store_instance(archive, patient_id, tmp_path)
    spool_root = archive.data_dir / "tmp"
    kill_with_spool_file(spool_root, 4096)
    kill_with_spool_file(spool_root, 1024)
    live = Spool(spool_root)
    live_file = live.new_path()
    live_file.write_bytes(b"in flight")

    try:
        dry_run = archive.run(["sweep", "--dry-run"])
        swept = archive.run(["sweep"])
        remaining = sorted(path.name for path in spool_root.iterdir())
        assert live_file.exists()
    finally:
        live.close()

    assert dry_run.returncode == 0, dry_run.stderr
    assert "Would remove 2 abandoned spool folders holding 2 files (5.0 KiB, 5120 bytes)" in dry_run.stdout
    assert swept.returncode == 0, swept.stderr
    assert "Removed 2 abandoned spool folders holding 2 files (5.0 KiB, 5120 bytes)" in swept.stdout
    assert remaining == sorted([live_file.parent.name, f"{live_file.parent.name}.lock"])


def test_serve_removes_abandoned_spool(archive: Archive) -> None:
    spool_root = archive.data_dir / "tmp"
    kill_with_spool_file(spool_root, 2048)
    assert len(list(spool_root.glob("*.lock"))) == 1

    archive.start()

    assert list(spool_root.iterdir()) == []
