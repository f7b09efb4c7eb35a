"""Spool folders: one locked folder per process, removed by others only once its owner is gone."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dicomweb_server.storage.spool import Spool, SpoolCleanup, remove_abandoned

KILLED_OWNER = """
import os, signal, sys
from pathlib import Path
from dicomweb_server.storage.spool import Spool
Spool(Path(sys.argv[1])).new_path().write_bytes(b"x" * 100)
os.kill(os.getpid(), signal.SIGKILL)
"""


def leave_abandoned_folder(root: Path) -> None:
    result = subprocess.run([sys.executable, "-c", KILLED_OWNER, str(root)], check=False)
    assert result.returncode == -9


def test_spool_paths_share_one_locked_folder(tmp_path: Path) -> None:
    spool = Spool(tmp_path)

    first = spool.new_path()
    second = spool.new_path(".part10")

    assert first.parent == second.parent
    assert first.parent.parent == tmp_path
    assert second.suffix == ".part10"
    assert (tmp_path / f"{first.parent.name}.lock").exists()
    spool.close()


def test_spool_close_removes_folder(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    spool.new_path().write_bytes(b"spooled")

    spool.close()
    spool.close()

    assert list(tmp_path.iterdir()) == []


def test_spool_threads_make_one_folder(tmp_path: Path) -> None:
    spool = Spool(tmp_path)

    with ThreadPoolExecutor(8) as pool:
        paths = list(pool.map(lambda _: spool.new_path(), range(64)))

    assert len({path.parent for path in paths}) == 1
    assert len(list(tmp_path.glob("*.lock"))) == 1
    spool.close()


def test_remove_abandoned_keeps_live_folder(tmp_path: Path) -> None:
    live = Spool(tmp_path)
    live_file = live.new_path()
    live_file.write_bytes(b"in flight")

    cleanup = remove_abandoned(tmp_path)

    assert cleanup == SpoolCleanup()
    assert live_file.exists()
    live.close()


def test_remove_abandoned_removes_killed_owner(tmp_path: Path) -> None:
    leave_abandoned_folder(tmp_path)
    leave_abandoned_folder(tmp_path)

    counted = remove_abandoned(tmp_path, dry_run=True)
    removed = remove_abandoned(tmp_path)

    assert counted == SpoolCleanup(folders=2, files=2, size=200)
    assert removed == SpoolCleanup(folders=2, files=2, size=200)
    assert list(tmp_path.iterdir()) == []


def test_remove_abandoned_ignores_other_files(tmp_path: Path) -> None:
    (tmp_path / "notes.lock").write_text("someone else's lock")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.part").write_bytes(b"keep")
    (tmp_path / "loose.part").write_bytes(b"keep")

    cleanup = remove_abandoned(tmp_path)

    assert cleanup == SpoolCleanup()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["loose.part", "notes", "notes.lock"]


def test_remove_abandoned_missing_root(tmp_path: Path) -> None:
    assert remove_abandoned(tmp_path / "never-made") == SpoolCleanup()
