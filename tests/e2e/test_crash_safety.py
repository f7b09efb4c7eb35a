"""A server killed with SIGKILL in the middle of a large STOW-RS leaves a consistent archive.

The request stores three small instances, then one of 300 MiB sent slowly in 1 MiB chunks. The
server is killed once half of the large part has been sent, when its S3 multipart upload has
received many 8 MiB parts and is not complete.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from dicomweb_server.config import load_settings
from dicomweb_server.storage.store import open_store
from tests.services import Archive, ServerProcess
from tests.testdata import synthetic_ct, to_bytes

pytestmark = pytest.mark.scale_only

BOUNDARY = "crash-test"
CHUNK_SIZE = 1024 * 1024
LARGE_FRAMES = 600
"""Frames of 512 x 512 16-bit pixels: 300 MiB of pixel data."""

SEND_PAUSE = 0.005
"""Seconds between chunks, so the server is killed while the body is still arriving."""

REFERENCED_SOP_SEQUENCE = "00081199"


def write_large_instance(path: Path, patient_id: str, study_instance_uid: str) -> Dataset:
    dataset = synthetic_ct(patient_id, study_instance_uid=study_instance_uid, instance_number=99)
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.Rows = dataset.Columns = 512
    dataset.NumberOfFrames = LARGE_FRAMES
    dataset.PixelData = np.zeros((LARGE_FRAMES, 512, 512), dtype=np.uint16).tobytes()
    dataset.save_as(path, enforce_file_format=True)
    del dataset.PixelData
    return dataset


def body_chunks(small: list[bytes], large: Path, sent: list[int], pause: float) -> Iterator[bytes]:
    """Yield the multipart body; ``sent[0]`` counts the bytes of the large part handed over so far."""
    for part in small:
        yield f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part + b"\r\n"
    yield f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
    with large.open("rb") as file:
        while chunk := file.read(CHUNK_SIZE):
            yield chunk
            sent[0] += len(chunk)
            time.sleep(pause)
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def post_body(server: ServerProcess, chunks: Iterator[bytes]) -> httpx.Response:
    headers = {
        **server.headers,
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={BOUNDARY}',
        "Accept": "application/dicom+json",
    }
    return httpx.post(f"{server.dicomweb}/studies", content=chunks, headers=headers, timeout=600)


def spool_parts(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "tmp").rglob("*.part"))


def index_rows(archive: Archive) -> list[tuple[str, str, int]]:
    """(SOP Instance UID, object key, object size) of every instance row."""
    assert archive.database_url is not None
    database_url = archive.database_url

    async def fetch() -> list[tuple[str, str, int]]:
        connection = await asyncpg.connect(database_url, timeout=10)
        try:
            rows = await connection.fetch("SELECT sop_instance_uid, object_key, object_size FROM instance")
        finally:
            await connection.close()
        return [(row["sop_instance_uid"], row["object_key"], row["object_size"]) for row in rows]

    return asyncio.run(fetch())


def stored_objects(archive: Archive) -> dict[str, int]:
    """Size of every object under the archive's key prefix, by key."""
    store = open_store(load_settings(environ=archive.settings_environment()))

    async def collect() -> dict[str, int]:
        return {stored.key: stored.size async for stored in store.list()}

    return asyncio.run(collect())


def kill_during_large_part(server: ServerProcess, small: list[bytes], large: Path, size: int) -> None:
    sent = [0]
    outcome: list[BaseException | httpx.Response] = []

    def send() -> None:
        try:
            outcome.append(post_body(server, body_chunks(small, large, sent, SEND_PAUSE)))
        except httpx.HTTPError as error:
            outcome.append(error)

    sender = threading.Thread(target=send)
    sender.start()
    deadline = time.monotonic() + 300
    while sent[0] < size // 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sent[0] >= size // 2, "the body was not sent in time"
    assert spool_parts(server.data_dir), "the server spooled nothing"
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(30)
    sender.join(120)

    assert not sender.is_alive()
    assert isinstance(outcome[0], httpx.HTTPError), "the request finished before the kill"


def test_sigkill_during_large_stow(scale_archive: Archive, patient_id: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "server"
    first = scale_archive.start(data_dir=data_dir)
    small_datasets = [synthetic_ct(patient_id, instance_number=number) for number in range(3)]
    study_instance_uid = small_datasets[0].StudyInstanceUID
    for dataset in small_datasets[1:]:
        dataset.StudyInstanceUID = study_instance_uid
    small = [to_bytes(dataset) for dataset in small_datasets]
    large_path = tmp_path / "large.dcm"
    large = write_large_instance(large_path, patient_id, study_instance_uid)
    large_size = large_path.stat().st_size

    kill_during_large_part(first, small, large_path, large_size)

    rows = index_rows(scale_archive)
    objects = stored_objects(scale_archive)
    assert {uid for uid, _, _ in rows} == {dataset.SOPInstanceUID for dataset in small_datasets}
    for _, key, size in rows:
        assert objects.get(key) == size, f"index row without its object: {key}"
    assert len(spool_parts(data_dir)) == 1, "the killed server's spool file should be left behind"

    second = scale_archive.start(data_dir=data_dir)
    assert spool_parts(data_dir) == []
    retried = post_body(second, body_chunks(small, large_path, [0], 0))

    assert retried.status_code == 200, retried.text
    referenced = retried.json()[REFERENCED_SOP_SEQUENCE]["Value"]
    assert len(referenced) == 4
    rows = index_rows(scale_archive)
    objects = stored_objects(scale_archive)
    assert len(rows) == 4
    assert (large.SOPInstanceUID, large_size) in {(uid, size) for uid, _, size in rows}
    assert sorted(objects) == sorted(key for _, key, _ in rows)

    swept = scale_archive.run(["sweep", "--grace-period", "0"])
    assert swept.returncode == 0, swept.stderr
    assert "Removed 0 objects (0 bytes)" in swept.stdout
    assert stored_objects(scale_archive) == objects
