"""Connection pools and clean-up: a client that disconnects mid-stream leaves nothing held.

The clients here are raw sockets with a small receive buffer that read the start of a response
and close, so the server is in the middle of its body when the connection goes away.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from tests.services import Archive, ServerProcess, postgres_sessions
from tests.testdata import synthetic_ct, to_bytes

LARGE_TEXT_ELEMENTS = 1000
"""Private LT elements per instance; each contains 900 characters, below the bulk data threshold."""

STUDY_INSTANCES = 20
SETTLE_TIMEOUT = 30.0
SMALL_POOL = {"DICOMWEB_INDEX_POOL_SIZE": "2", "DICOMWEB_INDEX_MAX_OVERFLOW": "0"}


def wait_until(condition: Callable[[], bool], timeout: float = SETTLE_TIMEOUT) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` seconds pass; return whether it held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


def instance_with_large_metadata(patient_id: str, study_instance_uid: str, number: int) -> Dataset:
    """A CT instance whose DICOM JSON is about 1 MB, so a study's metadata outgrows socket buffers."""
    dataset = synthetic_ct(patient_id, study_instance_uid=study_instance_uid, instance_number=number)
    dataset.private_block(0x0011, "DICOMWEB TEST", create=True)
    for element in range(LARGE_TEXT_ELEMENTS):
        dataset.add_new(0x00111000 + element, "LT", f"{element:04d}" + "x" * 896)
    return dataset


def large_instance(patient_id: str, frames: int) -> Dataset:
    """A multi-frame CT instance of 512 x 512 16-bit frames (0.5 MiB each)."""
    dataset = synthetic_ct(patient_id)
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.Rows = dataset.Columns = 512
    dataset.NumberOfFrames = frames
    dataset.PixelData = np.zeros((frames, 512, 512), dtype=np.uint16).tobytes()
    return dataset


def stow(server: ServerProcess, datasets: list[Dataset]) -> httpx.Response:
    boundary = "connections-test"
    body = bytearray()
    for dataset in datasets:
        body += (
            f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + to_bytes(dataset) + b"\r\n"
        )
    body += f"--{boundary}--\r\n".encode()
    headers = {
        **server.headers,
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
        "Accept": "application/dicom+json",
    }
    return httpx.post(f"{server.dicomweb}/studies", content=bytes(body), headers=headers, timeout=300)


def store_large_metadata_study(server: ServerProcess, patient_id: str) -> str:
    study_instance_uid = generate_uid()
    datasets = [
        instance_with_large_metadata(patient_id, study_instance_uid, number)
        for number in range(STUDY_INSTANCES)
    ]
    response = stow(server, datasets)
    assert response.status_code == 200, response.text
    return study_instance_uid


def raw_request(server: ServerProcess, head: str, headers: dict[str, str]) -> socket.socket:
    """Send a request head on a socket with a small receive buffer and return the open socket."""
    host, port = server.url.removeprefix("http://").split(":")
    connection = socket.create_connection((host, int(port)), timeout=60)
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    lines = [head, f"Host: {host}:{port}"] + [f"{name}: {value}" for name, value in headers.items()]
    try:
        connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    except BaseException:
        connection.close()
        raise
    return connection


def start_reading(server: ServerProcess, path: str, accept: str) -> socket.socket:
    """GET ``path`` and read only the start of the response; the caller closes the socket."""
    connection = raw_request(server, f"GET /dicom-web{path} HTTP/1.1", {**server.headers, "Accept": accept})
    received = connection.recv(65536)
    if not received.startswith(b"HTTP/1.1 200"):
        connection.close()
        raise AssertionError(f"the server answered {received[:200]!r}")
    return connection


def spool_files(server: ServerProcess) -> list[Path]:
    return sorted(
        path for path in (server.data_dir / "tmp").rglob("*") if path.suffix in (".part", ".part10")
    )


def held_sessions(archive: Archive) -> list[tuple[str | None, str]]:
    """The index sessions of the archive's database that are not idle in the pool (none on SQLite)."""
    if archive.database_url is None:
        return []
    return [session for session in postgres_sessions(archive.database_url) if session[0] != "idle"]


def server_sessions(archive: Archive) -> list[tuple[str | None, str]]:
    assert archive.database_url is not None
    return [session for session in postgres_sessions(archive.database_url) if session[1] == "dicomweb-server"]


def assert_serves_after(server: ServerProcess, study_instance_uid: str) -> None:
    response = httpx.get(
        f"{server.dicomweb}/studies/{study_instance_uid}/metadata",
        headers={**server.headers, "Accept": "application/dicom+json"},
        timeout=120,
    )
    assert response.status_code == 200
    assert "Traceback" not in server.log()


def test_metadata_disconnect_releases_connection(archive: Archive, patient_id: str) -> None:
    server = archive.start(SMALL_POOL)
    study_instance_uid = store_large_metadata_study(server, patient_id)

    reader = start_reading(server, f"/studies/{study_instance_uid}/metadata", "application/dicom+json")
    try:
        if archive.database_url is not None:
            assert wait_until(lambda: ("idle in transaction", "dicomweb-server") in held_sessions(archive))
    finally:
        reader.close()

    assert wait_until(lambda: held_sessions(archive) == [])
    if archive.database_url is not None:
        assert len(server_sessions(archive)) <= 2
    assert_serves_after(server, study_instance_uid)


def test_retrieve_disconnect_releases_connection(archive: Archive, patient_id: str) -> None:
    server = archive.start(SMALL_POOL)
    dataset = large_instance(patient_id, frames=128)
    assert stow(server, [dataset]).status_code == 200
    path = (
        f"/studies/{dataset.StudyInstanceUID}/series/{dataset.SeriesInstanceUID}"
        f"/instances/{dataset.SOPInstanceUID}"
    )

    reader = start_reading(server, path, 'multipart/related; type="application/dicom"; transfer-syntax=*')
    reader.close()

    assert wait_until(lambda: held_sessions(archive) == [])
    if archive.database_url is not None:
        assert len(server_sessions(archive)) <= 2
    assert_serves_after(server, dataset.StudyInstanceUID)


def test_stow_disconnect_leaves_nothing(archive: Archive, patient_id: str) -> None:
    server = archive.start(SMALL_POOL)
    boundary = "interrupted"
    part = to_bytes(large_instance(patient_id, frames=128))
    head = f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
    headers = {
        **server.headers,
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
        "Content-Length": str(len(head) + len(part) + len(f"\r\n--{boundary}--\r\n")),
        "Accept": "application/dicom+json",
    }

    sender = raw_request(server, "POST /dicom-web/studies HTTP/1.1", headers)
    try:
        sender.sendall(head + part[: len(part) // 2])
        assert wait_until(lambda: spool_files(server) != [])
    finally:
        sender.close()

    assert wait_until(lambda: spool_files(server) == [])
    assert wait_until(lambda: held_sessions(archive) == [])
    assert "Traceback" not in server.log()
    search = httpx.get(
        f"{server.dicomweb}/instances",
        params={"PatientID": patient_id},
        headers={**server.headers, "Accept": "application/dicom+json"},
        timeout=60,
    )
    assert search.status_code in (200, 204), search.text
    assert search.status_code == 204 or search.json() == []


@pytest.mark.scale_only
def test_pool_size_bounds_connections(scale_archive: Archive, patient_id: str) -> None:
    limits = {
        "DICOMWEB_INDEX_POOL_SIZE": "1",
        "DICOMWEB_INDEX_MAX_OVERFLOW": "1",
        "DICOMWEB_INDEX_TIMEOUT": "3",
    }
    server = scale_archive.start(limits)
    study_instance_uid = store_large_metadata_study(server, patient_id)
    path = f"/studies/{study_instance_uid}/metadata"

    readers = []
    try:
        readers = [start_reading(server, path, "application/dicom+json") for _ in range(2)]
        assert wait_until(lambda: len(held_sessions(scale_archive)) == 2)
        waiting = httpx.get(
            f"{server.dicomweb}/studies",
            params={"PatientID": patient_id},
            headers={**server.headers, "Accept": "application/dicom+json"},
            timeout=60,
        )
    finally:
        for reader in readers:
            reader.close()

    # The audit writer keeps one connection of its own beyond the pool, so that requests holding
    # every pooled connection can still have their audit entries written.
    assert waiting.status_code == 503
    assert len(server_sessions(scale_archive)) <= 2 + 1
    assert wait_until(lambda: held_sessions(scale_archive) == [])
    assert len(server_sessions(scale_archive)) <= 1 + 1
    assert_serves_after(server, study_instance_uid)
