"""Every readable file of the shared test data, stored with STOW-RS and read back with QIDO and WADO.

The files are stored once per backend through dicomweb-client. Some files hold the same SOP
Instance in several transfer syntaxes; the first stored wins and the others fail as duplicates,
because the server keeps the first version by default.
"""

from __future__ import annotations

import io
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom.dataset import Dataset

from tests.services import ServerProcess
from tests.testdata import entries, path_of

DUPLICATE = 0x0111
MISSING_ATTRIBUTE = 0xA900
REQUIRED = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")


@dataclass
class StoredFile:
    path: str
    original: bytes
    dataset: Dataset
    outcome: str  # "stored", "duplicate" or "failed"
    failure_reason: int | None = None


def _readable_entries() -> list[dict[str, Any]]:
    return [entry for entry in entries() if entry["path"].endswith(".dcm") or "DICOMDIR" in entry["path"]]


def _expected_failure(dataset: Dataset) -> int | None:
    for keyword in REQUIRED:
        if not str(dataset.get(keyword, "")).strip():
            return MISSING_ATTRIBUTE
    return None


def _store_one(client: DICOMwebClient, raw: bytes) -> tuple[int, dict[str, Any]]:
    boundary = "testdataboundary"
    body = (
        f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        + raw
        + f"\r\n--{boundary}--\r\n".encode()
    )
    response = client._session.post(
        f"{client.base_url}/studies",
        data=body,
        headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "Accept": "application/dicom+json",
        },
    )
    return response.status_code, response.json()


@pytest.fixture(scope="module")
def stored(server: ServerProcess) -> list[StoredFile]:
    """Store every readable test file, one STOW-RS request each, in manifest order."""
    client = DICOMwebClient(server.dicomweb, headers=dict(server.headers))
    results = []
    for entry in _readable_entries():
        path = path_of(entry)
        raw = path.read_bytes()
        dataset = pydicom.dcmread(io.BytesIO(raw), force=True)
        status, body = _store_one(client, raw)
        if "00081199" in body:
            # 202 means stored with a warning, such as a UID component with a leading zero.
            assert status in (200, 202), (entry["path"], status, body)
            results.append(StoredFile(entry["path"], raw, dataset, "stored"))
            continue
        failed = body["00081198"]["Value"][0]
        reason = failed["00081197"]["Value"][0]
        outcome = "duplicate" if reason == DUPLICATE else "failed"
        assert status == 409, (entry["path"], status, body)
        results.append(StoredFile(entry["path"], raw, dataset, outcome, reason))
    return results


def test_store_testdata_outcomes_follow_the_data(stored: list[StoredFile]) -> None:
    seen: set[str] = set()
    for item in stored:
        expected = _expected_failure(item.dataset)
        if expected is not None:
            assert item.outcome == "failed", item.path
            assert item.failure_reason == expected, item.path
            continue
        uid = str(item.dataset.SOPInstanceUID)
        if uid in seen:
            assert item.outcome in ("duplicate", "stored"), item.path
        else:
            assert item.outcome == "stored", (item.path, item.failure_reason)
        seen.add(uid)
    assert sum(item.outcome == "stored" for item in stored) >= 50


def test_store_same_file_twice_keeps_one_copy(server: ServerProcess, stored: list[StoredFile]) -> None:
    client = DICOMwebClient(server.dicomweb, headers=dict(server.headers))
    first = next(item for item in stored if item.outcome == "stored")
    status, body = _store_one(client, first.original)
    assert status == 200
    assert "00081198" not in body
    instances = client.search_for_instances(
        study_instance_uid=str(first.dataset.StudyInstanceUID),
        search_filters={"SOPInstanceUID": str(first.dataset.SOPInstanceUID)},
    )
    assert len(instances) == 1


def _retrieve_stored_bytes(client: DICOMwebClient, dataset: Dataset) -> bytes:
    url = (
        f"{client.base_url}/studies/{dataset.StudyInstanceUID}/series/{dataset.SeriesInstanceUID}"
        f"/instances/{dataset.SOPInstanceUID}"
    )
    response = client._session.get(
        url, headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'}
    )
    assert response.status_code == 200, response.text
    content_type = response.headers["Content-Type"]
    boundary = content_type.split("boundary=")[1].split(";")[0].strip('"')
    body = response.content
    start = body.index(b"\r\n\r\n") + 4
    end = body.rindex(f"\r\n--{boundary}--".encode())
    return body[start:end]


def test_retrieve_with_any_transfer_syntax_returns_stored_bytes(
    server: ServerProcess, stored: list[StoredFile]
) -> None:
    client = DICOMwebClient(server.dicomweb, headers=dict(server.headers))
    for item in stored:
        if item.outcome != "stored":
            continue
        returned = _retrieve_stored_bytes(client, item.dataset)
        if item.original[128:132] == b"DICM":
            assert returned == item.original, item.path
        else:
            # A data set sent without preamble and File Meta Information comes back with them.
            assert returned[128:132] == b"DICM", item.path
            assert returned.endswith(item.original), item.path


def _without_bulk(document: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    """Drop file meta elements and every element that ``reference`` gives as bulk data."""
    cleaned = {}
    for key, element in document.items():
        given = reference.get(key, {})
        if (
            key.startswith("0002")
            or "BulkDataURI" in given
            or "InlineBinary" in given
            or "BulkDataURI" in element
        ):
            continue
        if element.get("vr") == "SQ" and "Value" in element:
            items = given.get("Value", [{}] * len(element["Value"]))
            element = {
                "vr": "SQ",
                "Value": [
                    _without_bulk(item, ref) for item, ref in zip(element["Value"], items, strict=False)
                ],
            }
        cleaned[key] = element
    return cleaned


def test_metadata_equals_original_outside_bulk_data(server: ServerProcess, stored: list[StoredFile]) -> None:
    client = DICOMwebClient(server.dicomweb, headers=dict(server.headers))
    for item in stored:
        if item.outcome != "stored":
            continue
        dataset = item.dataset
        metadata = client.retrieve_instance_metadata(
            str(dataset.StudyInstanceUID), str(dataset.SeriesInstanceUID), str(dataset.SOPInstanceUID)
        )
        read_back = Dataset.from_json(metadata, bulk_data_uri_handler=lambda *_: b"")
        original = dataset.copy()
        # Elements after Pixel Data are trailing padding or signatures, which metadata leaves out.
        for tag in [tag for tag in original.keys() if tag > 0x7FE00010]:
            del original[tag]
        expected = _without_bulk(original.to_json_dict(), metadata)
        actual = _without_bulk(read_back.to_json_dict(), metadata)
        assert actual == expected, item.path


def _stored_by_study(stored: list[StoredFile]) -> dict[str, list[Dataset]]:
    studies: dict[str, list[Dataset]] = defaultdict(list)
    for item in stored:
        if item.outcome == "stored":
            studies[str(item.dataset.StudyInstanceUID)].append(item.dataset)
    return studies


def test_search_finds_each_study_by_patient_id_with_right_counts(
    server: ServerProcess, stored: list[StoredFile]
) -> None:
    client = DICOMwebClient(server.dicomweb, headers=dict(server.headers))
    for study_uid, datasets in _stored_by_study(stored).items():
        patient_id = str(datasets[0].get("PatientID", ""))
        if not patient_id:
            continue
        found = client.search_for_studies(
            search_filters={"PatientID": patient_id, "StudyInstanceUID": study_uid}
        )
        assert len(found) == 1, study_uid
        study = found[0]
        assert study["00201208"]["Value"] == [len(datasets)], study_uid
        # A series takes its Modality from its first stored instance.
        series: dict[str, str] = {}
        for dataset in datasets:
            series.setdefault(str(dataset.SeriesInstanceUID), str(dataset.get("Modality", "")))
        assert study["00201206"]["Value"] == [len(series)], study_uid
        modalities = sorted({modality for modality in series.values() if modality})
        assert study["00080061"].get("Value", []) == modalities, study_uid


def test_search_by_wildcard_patient_name(server: ServerProcess, stored: list[StoredFile]) -> None:
    client = DICOMwebClient(server.dicomweb, headers=dict(server.headers))
    studies = _stored_by_study(stored)
    for study_uid, datasets in studies.items():
        name = str(datasets[0].get("PatientName", "")).split("=")[0]
        family = name.split("^")[0]
        if not family:
            continue
        for pattern in (f"*{family}*", f"{family.lower()}*", f"*{family.upper()}*"):
            found = client.search_for_studies(search_filters={"PatientName": pattern}, get_remaining=True)
            assert study_uid in {study["0020000D"]["Value"][0] for study in found}, (study_uid, pattern)


def test_search_by_study_date_range(server: ServerProcess, stored: list[StoredFile]) -> None:
    client = DICOMwebClient(server.dicomweb, headers=dict(server.headers))
    for study_uid, datasets in _stored_by_study(stored).items():
        date = str(datasets[0].get("StudyDate", ""))
        if len(date) != 8:
            continue
        for value in (f"{date}-{date}", f"{date}-", f"-{date}", date):
            found = client.search_for_studies(
                search_filters={"StudyDate": value, "StudyInstanceUID": study_uid}
            )
            assert len(found) == 1, (study_uid, value)
        earlier = f"-{int(date[:4]) - 1}1231"
        assert (
            client.search_for_studies(search_filters={"StudyDate": earlier, "StudyInstanceUID": study_uid})
            == []
        )


def test_search_by_modalities_in_study(server: ServerProcess, stored: list[StoredFile]) -> None:
    client = DICOMwebClient(server.dicomweb, headers=dict(server.headers))
    for study_uid, datasets in _stored_by_study(stored).items():
        series: dict[str, str] = {}
        for dataset in datasets:
            series.setdefault(str(dataset.SeriesInstanceUID), str(dataset.get("Modality", "")))
        for modality in {modality for modality in series.values() if modality}:
            found = client.search_for_studies(
                search_filters={"ModalitiesInStudy": modality, "StudyInstanceUID": study_uid}
            )
            assert len(found) == 1, (study_uid, modality)


def test_paging_covers_every_study_once(server: ServerProcess, stored: list[StoredFile]) -> None:
    client = DICOMwebClient(server.dicomweb, headers=dict(server.headers))
    everything = [study["0020000D"]["Value"][0] for study in client.search_for_studies(limit=1000)]
    assert set(_stored_by_study(stored)) <= set(everything)
    paged: list[str] = []
    offset = 0
    while True:
        page = client.search_for_studies(limit=7, offset=offset)
        if not page:
            break
        paged += [study["0020000D"]["Value"][0] for study in page]
        offset += 7
    assert paged == everything
    assert not [uid for uid, count in Counter(paged).items() if count > 1]
