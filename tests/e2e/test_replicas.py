"""Two server processes sharing one PostgreSQL index and one S3 bucket, as replicas behind a load balancer."""

from __future__ import annotations

import asyncio
import copy
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import asyncpg
import httpx
import pytest
from pydicom.dataset import Dataset

from dicomweb_server.config import load_settings
from dicomweb_server.storage.store import open_store
from tests.services import Archive, ServerProcess
from tests.testdata import synthetic_ct, to_bytes

pytestmark = pytest.mark.scale_only

ROUNDS = 5
"""Simultaneous stores per test; each round is one chance for both replicas to pass the duplicate check."""

BOUNDARY = "replica-test"
REFERENCED_SOP_SEQUENCE = "00081199"
FAILED_SOP_SEQUENCE = "00081198"
FAILURE_REASON = "00081197"
DUPLICATE_SOP_INSTANCE = 0x0111


def stow_request(server: ServerProcess, dataset: Dataset) -> tuple[str, bytes, dict[str, str]]:
    body = (
        f"--{BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + to_bytes(dataset)
        + f"\r\n--{BOUNDARY}--\r\n".encode()
    )
    headers = {
        **server.headers,
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={BOUNDARY}',
        "Accept": "application/dicom+json",
    }
    return f"{server.dicomweb}/studies", body, headers


def stow(server: ServerProcess, dataset: Dataset) -> httpx.Response:
    url, body, headers = stow_request(server, dataset)
    return httpx.post(url, content=body, headers=headers, timeout=120)


def stow_together(requests: list[tuple[ServerProcess, Dataset]]) -> list[httpx.Response]:
    """Send the STOW requests from one thread each, released at the same moment."""
    prepared = [stow_request(server, dataset) for server, dataset in requests]
    barrier = threading.Barrier(len(prepared))

    def send(url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
        with httpx.Client(timeout=120) as client:
            request = client.build_request("POST", url, content=body, headers=headers)
            barrier.wait()
            return client.send(request)

    with ThreadPoolExecutor(len(prepared)) as pool:
        futures = [pool.submit(send, *request) for request in prepared]
        return [future.result() for future in futures]


def start_replicas(archive: Archive, tmp_path: Path) -> tuple[ServerProcess, ServerProcess]:
    return archive.start(data_dir=tmp_path / "first"), archive.start(data_dir=tmp_path / "second")


def indexed_count(archive: Archive, sop_instance_uids: list[str]) -> int:
    assert archive.database_url is not None
    database_url = archive.database_url

    async def count() -> int:
        connection = await asyncpg.connect(database_url, timeout=10)
        try:
            return int(
                await connection.fetchval(
                    "SELECT count(*) FROM instance WHERE sop_instance_uid = ANY($1::text[])",
                    sop_instance_uids,
                )
            )
        finally:
            await connection.close()

    return asyncio.run(count())


def object_count(archive: Archive) -> int:
    store = open_store(load_settings(environ=archive.settings_environment()))

    async def count() -> int:
        return len([stored async for stored in store.list()])

    return asyncio.run(count())


def log_lines(servers: tuple[ServerProcess, ...], text: str) -> int:
    return sum(server.log().count(text) for server in servers)


def test_replica_finds_instance_at_once(scale_archive: Archive, patient_id: str, tmp_path: Path) -> None:
    first, second = start_replicas(scale_archive, tmp_path)
    dataset = synthetic_ct(patient_id)

    stored = stow(first, dataset)
    found = httpx.get(
        f"{second.dicomweb}/instances",
        params={"PatientID": patient_id},
        headers={**second.headers, "Accept": "application/dicom+json"},
        timeout=60,
    )
    retrieved = httpx.get(
        f"{second.dicomweb}/studies/{dataset.StudyInstanceUID}/series/{dataset.SeriesInstanceUID}"
        f"/instances/{dataset.SOPInstanceUID}",
        headers={**second.headers, "Accept": "application/dicom; transfer-syntax=*"},
        timeout=60,
    )

    assert stored.status_code == 200, stored.text
    assert found.status_code == 200, found.text
    assert [item["00080018"]["Value"][0] for item in found.json()] == [dataset.SOPInstanceUID]
    assert retrieved.status_code == 200
    assert retrieved.content == to_bytes(dataset)


def test_replicas_store_same_instance_once(scale_archive: Archive, patient_id: str, tmp_path: Path) -> None:
    replicas = start_replicas(scale_archive, tmp_path)
    datasets = [synthetic_ct(patient_id, instance_number=number) for number in range(ROUNDS)]

    outcomes = [stow_together([(replicas[0], dataset), (replicas[1], dataset)]) for dataset in datasets]

    for responses, dataset in zip(outcomes, datasets, strict=True):
        for response in responses:
            assert response.status_code == 200, response.text
            (item,) = response.json()[REFERENCED_SOP_SEQUENCE]["Value"]
            assert item["00081155"]["Value"] == [dataset.SOPInstanceUID]
    assert indexed_count(scale_archive, [dataset.SOPInstanceUID for dataset in datasets]) == ROUNDS
    assert object_count(scale_archive) == ROUNDS
    assert log_lines(replicas, "STOW-RS: 1 stored, 0 already stored, 0 failed") == ROUNDS
    assert log_lines(replicas, "STOW-RS: 0 stored, 1 already stored, 0 failed") == ROUNDS


def test_replicas_store_conflicting_instance_once(
    scale_archive: Archive, patient_id: str, tmp_path: Path
) -> None:
    replicas = start_replicas(scale_archive, tmp_path)
    pairs = []
    for number in range(ROUNDS):
        original = synthetic_ct(patient_id, instance_number=number)
        changed = copy.deepcopy(original)
        changed.ImageComments = "same SOP Instance UID, other content"
        pairs.append((original, changed))

    outcomes = [
        stow_together([(replicas[0], original), (replicas[1], changed)]) for original, changed in pairs
    ]

    for responses in outcomes:
        assert sorted(response.status_code for response in responses) == [200, 409]
        rejected = next(response for response in responses if response.status_code == 409)
        (failure,) = rejected.json()[FAILED_SOP_SEQUENCE]["Value"]
        assert failure[FAILURE_REASON]["Value"] == [DUPLICATE_SOP_INSTANCE]
    assert indexed_count(scale_archive, [original.SOPInstanceUID for original, _ in pairs]) == ROUNDS
    assert object_count(scale_archive) == ROUNDS
