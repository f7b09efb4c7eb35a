"""STOW-RS against a live server: request forms, the Store Instances Response, failures, duplicates."""

from __future__ import annotations

import copy
import io
import re
import socket
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pydicom
import pydicom.config
import pytest
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from tests.e2e.dicomweb_http import (
    DICOM_JSON,
    IDENTITY_UIDS,
    TIMEOUT,
    chunks,
    first,
    fresh_copy,
    get,
    multipart_body,
    new_boundary,
    object_keys,
    parse_multipart,
    restamp,
    sequence_items,
    spool_files,
    store,
    stow_content_type,
)
from tests.identity import AdminApi, unique
from tests.services import Backend, ServerProcess
from tests.testdata import entries, path_of, synthetic_ct, to_bytes

RETRIEVE_URL = "00081190"
FAILED_SOP_SEQUENCE = "00081198"
REFERENCED_SOP_SEQUENCE = "00081199"
FAILURE_REASON = "00081197"
WARNING_REASON = "00081196"
REFERENCED_SOP_INSTANCE_UID = "00081155"
REFERENCED_SOP_CLASS_UID = "00081150"

PROCESSING_FAILURE = 0x0110
DUPLICATE_SOP_INSTANCE = 0x0111
OUT_OF_RESOURCES = 0xA700
DATA_SET_DOES_NOT_MATCH = 0xA900
CANNOT_UNDERSTAND = 0xC000
DATA_SET_DOES_NOT_MATCH_SOP_CLASS_WARNING = 0xB007


def _post(
    server: ServerProcess, body: bytes | Iterator[bytes], content_type: str, path: str = "/studies"
) -> httpx.Response:
    headers = {**server.headers, "Content-Type": content_type, "Accept": DICOM_JSON}
    return httpx.post(f"{server.dicomweb}{path}", content=body, headers=headers, timeout=TIMEOUT)


def _instance_url(server: ServerProcess, dataset: Dataset) -> str:
    return (
        f"{server.dicomweb}/studies/{dataset.StudyInstanceUID}/series/{dataset.SeriesInstanceUID}"
        f"/instances/{dataset.SOPInstanceUID}"
    )


def _indexed(server: ServerProcess, sop_instance_uid: str) -> list[dict[str, object]]:
    response = get(server, "/instances", params={"SOPInstanceUID": sop_instance_uid})
    assert response.status_code == 200, response.text
    return list(response.json())


def _with_raw_uid(dataset: Dataset, keyword: str, value: str) -> Dataset:
    """Set a UID attribute to a value pydicom would reject, as a broken sender writes it."""
    tag = {"StudyInstanceUID": 0x0020000D, "SeriesInstanceUID": 0x0020000E, "SOPInstanceUID": 0x00080018}
    dataset.add(DataElement(tag[keyword], "UI", value, validation_mode=pydicom.config.IGNORE))
    return dataset


def _assert_left_nothing(
    server: ServerProcess, backend: Backend, objects_before: set[str], sop_instance_uid: str | None
) -> None:
    assert object_keys(server, backend) == objects_before
    assert spool_files(server) == []
    if sop_instance_uid is not None:
        assert _indexed(server, sop_instance_uid) == []


@pytest.mark.parametrize("quoted", [True, False], ids=["quoted", "unquoted"])
def test_store_boundary_forms(server: ServerProcess, patient_id: str, quoted: bool) -> None:
    dataset = synthetic_ct(patient_id)
    boundary = new_boundary()
    response = _post(server, multipart_body([dataset], boundary), stow_content_type(boundary, quoted=quoted))
    assert response.status_code == 200, response.text
    assert len(_indexed(server, dataset.SOPInstanceUID)) == 1


def test_store_preamble_before_first_boundary(server: ServerProcess, patient_id: str) -> None:
    dataset = synthetic_ct(patient_id)
    boundary = new_boundary()
    preamble = b"This is a multipart message; the text before the first boundary is ignored.\r\n"
    body = multipart_body([dataset], boundary, preamble=preamble)
    response = _post(server, body, stow_content_type(boundary))
    assert response.status_code == 200, response.text
    assert len(_indexed(server, dataset.SOPInstanceUID)) == 1


def test_store_chunked_transfer(server: ServerProcess, patient_id: str) -> None:
    datasets = [synthetic_ct(patient_id), synthetic_ct(patient_id)]
    boundary = new_boundary()
    body = multipart_body(datasets, boundary, preamble=b"preamble text\r\n")
    # Small chunks split the boundary and the part headers across reads; httpx sends an
    # iterator with Transfer-Encoding: chunked.
    response = _post(server, chunks(body, 997), stow_content_type(boundary))
    assert response.status_code == 200, response.text
    for dataset in datasets:
        assert len(_indexed(server, dataset.SOPInstanceUID)) == 1


def test_store_response_module(server: ServerProcess, patient_id: str) -> None:
    study_uid = generate_uid()
    datasets = [synthetic_ct(patient_id, study_instance_uid=study_uid) for _ in range(2)]
    response = store(server, datasets)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(DICOM_JSON)
    body = response.json()
    assert first(body[RETRIEVE_URL]) == f"{server.dicomweb}/studies/{study_uid}"
    assert FAILED_SOP_SEQUENCE not in body
    referenced = sequence_items(body, REFERENCED_SOP_SEQUENCE)
    assert [first(item[REFERENCED_SOP_INSTANCE_UID]) for item in referenced] == [
        dataset.SOPInstanceUID for dataset in datasets
    ]
    for item, dataset in zip(referenced, datasets, strict=True):
        assert first(item[REFERENCED_SOP_CLASS_UID]) == dataset.SOPClassUID
        assert first(item[RETRIEVE_URL]) == _instance_url(server, dataset)
        assert WARNING_REASON not in item


def test_store_retrieve_url_is_fetchable(server: ServerProcess, patient_id: str) -> None:
    dataset = synthetic_ct(patient_id)
    body = store(server, [dataset]).json()
    url = first(sequence_items(body, REFERENCED_SOP_SEQUENCE)[0][RETRIEVE_URL])
    response = httpx.get(
        url,
        headers={
            **server.headers,
            "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*',
        },
        timeout=TIMEOUT,
    )
    assert response.status_code == 200
    assert to_bytes(dataset) in response.content


def test_store_into_study_path(server: ServerProcess, patient_id: str) -> None:
    dataset = synthetic_ct(patient_id)
    response = store(server, [dataset], study_instance_uid=dataset.StudyInstanceUID)
    assert response.status_code == 200, response.text
    assert first(response.json()[RETRIEVE_URL]) == f"{server.dicomweb}/studies/{dataset.StudyInstanceUID}"


def test_store_study_mismatch_fails(server: ServerProcess, backend: Backend, patient_id: str) -> None:
    dataset = synthetic_ct(patient_id)
    other_study = generate_uid()
    before = object_keys(server, backend)
    response = store(server, [dataset], study_instance_uid=other_study)
    assert response.status_code == 409, response.text
    body = response.json()
    assert REFERENCED_SOP_SEQUENCE not in body
    (failed,) = sequence_items(body, FAILED_SOP_SEQUENCE)
    assert first(failed[FAILURE_REASON]) == DATA_SET_DOES_NOT_MATCH
    assert first(failed[REFERENCED_SOP_INSTANCE_UID]) == dataset.SOPInstanceUID
    assert first(failed[REFERENCED_SOP_CLASS_UID]) == dataset.SOPClassUID
    _assert_left_nothing(server, backend, before, dataset.SOPInstanceUID)


def test_store_study_mismatch_among_matches_is_202(server: ServerProcess, patient_id: str) -> None:
    study_uid = generate_uid()
    matching = synthetic_ct(patient_id, study_instance_uid=study_uid)
    other = synthetic_ct(patient_id)
    response = store(server, [matching, other], study_instance_uid=study_uid)
    assert response.status_code == 202, response.text
    body = response.json()
    assert [first(item[REFERENCED_SOP_INSTANCE_UID]) for item in body[REFERENCED_SOP_SEQUENCE]["Value"]] == [
        matching.SOPInstanceUID
    ]
    (failed,) = sequence_items(body, FAILED_SOP_SEQUENCE)
    assert first(failed[REFERENCED_SOP_INSTANCE_UID]) == other.SOPInstanceUID
    assert _indexed(server, other.SOPInstanceUID) == []


def test_store_part_not_dicom(server: ServerProcess, backend: Backend, patient_id: str) -> None:
    dataset = synthetic_ct(patient_id)
    before = object_keys(server, backend)
    response = store(server, [b"this is not a DICOM file at all" * 10, dataset])
    assert response.status_code == 202, response.text
    body = response.json()
    (failed,) = sequence_items(body, FAILED_SOP_SEQUENCE)
    assert first(failed[FAILURE_REASON]) == CANNOT_UNDERSTAND
    assert "Value" not in failed[REFERENCED_SOP_INSTANCE_UID]
    assert len(sequence_items(body, REFERENCED_SOP_SEQUENCE)) == 1
    assert len(object_keys(server, backend) - before) == 1
    assert spool_files(server) == []


def test_store_part_with_other_media_type(server: ServerProcess, patient_id: str) -> None:
    dataset = synthetic_ct(patient_id)
    boundary = new_boundary()
    body = multipart_body([dataset], boundary, part_type="application/pdf")
    response = _post(server, body, stow_content_type(boundary))
    assert response.status_code == 409, response.text
    (failed,) = sequence_items(response.json(), FAILED_SOP_SEQUENCE)
    assert first(failed[FAILURE_REASON]) == CANNOT_UNDERSTAND
    assert _indexed(server, dataset.SOPInstanceUID) == []


@pytest.mark.parametrize(
    "keyword", ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID"]
)
def test_store_missing_required_uid(
    server: ServerProcess, backend: Backend, patient_id: str, keyword: str
) -> None:
    dataset = synthetic_ct(patient_id)
    sop_instance_uid = dataset.SOPInstanceUID
    delattr(dataset, keyword)
    before = object_keys(server, backend)
    response = store(server, [dataset])
    assert response.status_code == 409, response.text
    (failed,) = sequence_items(response.json(), FAILED_SOP_SEQUENCE)
    assert first(failed[FAILURE_REASON]) == DATA_SET_DOES_NOT_MATCH
    assert keyword in failed["00000902"]["Value"][0]
    _assert_left_nothing(server, backend, before, sop_instance_uid)


UNUSABLE_UIDS = {
    "empty": ("", DATA_SET_DOES_NOT_MATCH),
    "too long": ("1.2." + "3" * 62, CANNOT_UNDERSTAND),
    "letters": ("1.2.840.abc", CANNOT_UNDERSTAND),
    "slash": ("1.2/../3", CANNOT_UNDERSTAND),
    "empty component": ("1..2", CANNOT_UNDERSTAND),
}


@pytest.mark.parametrize("case", list(UNUSABLE_UIDS))
@pytest.mark.parametrize("keyword", ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"])
def test_store_unusable_uid(
    server: ServerProcess, backend: Backend, patient_id: str, keyword: str, case: str
) -> None:
    value, reason = UNUSABLE_UIDS[case]
    dataset = _with_raw_uid(synthetic_ct(patient_id), keyword, value)
    before = object_keys(server, backend)
    response = store(server, [dataset])
    assert response.status_code == 409, response.text
    (failed,) = sequence_items(response.json(), FAILED_SOP_SEQUENCE)
    assert first(failed[FAILURE_REASON]) == reason
    assert keyword in failed["00000902"]["Value"][0]
    _assert_left_nothing(server, backend, before, None)


def test_store_leading_zero_uid_warns(server: ServerProcess, patient_id: str) -> None:
    dataset = synthetic_ct(patient_id)
    dataset.SeriesInstanceUID = "1.2.826.0.1.3680043.02." + generate_uid()[-12:].lstrip(".")
    response = store(server, [dataset])
    assert response.status_code == 202, response.text
    body = response.json()
    assert FAILED_SOP_SEQUENCE not in body
    (item,) = sequence_items(body, REFERENCED_SOP_SEQUENCE)
    assert first(item[WARNING_REASON]) == DATA_SET_DOES_NOT_MATCH_SOP_CLASS_WARNING
    assert "leading zero" in first(item["00000902"])
    assert first(item[RETRIEVE_URL]) == _instance_url(server, dataset)
    assert len(_indexed(server, dataset.SOPInstanceUID)) == 1


def test_store_identical_twice_keeps_one_copy(
    server: ServerProcess, backend: Backend, patient_id: str
) -> None:
    dataset = synthetic_ct(patient_id)
    before = object_keys(server, backend)
    assert store(server, [dataset]).status_code == 200
    second = store(server, [dataset])
    assert second.status_code == 200, second.text
    assert len(sequence_items(second.json(), REFERENCED_SOP_SEQUENCE)) == 1
    assert len(object_keys(server, backend) - before) == 1
    assert len(_indexed(server, dataset.SOPInstanceUID)) == 1


def test_store_different_content_is_duplicate(
    server: ServerProcess, backend: Backend, patient_id: str
) -> None:
    dataset = synthetic_ct(patient_id)
    assert store(server, [dataset]).status_code == 200
    before = object_keys(server, backend)
    changed = copy.deepcopy(dataset)
    changed.ImageComments = "changed after the first store"
    response = store(server, [changed])
    assert response.status_code == 409, response.text
    (failed,) = sequence_items(response.json(), FAILED_SOP_SEQUENCE)
    assert first(failed[FAILURE_REASON]) == DUPLICATE_SOP_INSTANCE
    assert first(failed[REFERENCED_SOP_INSTANCE_UID]) == dataset.SOPInstanceUID
    assert "DICOMWEB_OVERWRITE" in first(failed["00000902"])
    _assert_left_nothing(server, backend, before, None)
    retrieved = get(
        server,
        f"/studies/{dataset.StudyInstanceUID}/series/{dataset.SeriesInstanceUID}"
        f"/instances/{dataset.SOPInstanceUID}",
        headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'},
    )
    assert to_bytes(dataset) in retrieved.content


def test_store_overwrite_replaces(
    server_factory: Callable[..., ServerProcess], backend: Backend, patient_id: str
) -> None:
    server = server_factory({"DICOMWEB_OVERWRITE": "true"})
    dataset = synthetic_ct(patient_id)
    before = object_keys(server, backend)
    assert store(server, [dataset]).status_code == 200
    (old_key,) = object_keys(server, backend) - before
    changed = copy.deepcopy(dataset)
    changed.ImageComments = "replacement"
    response = store(server, [changed])
    assert response.status_code == 200, response.text
    after = object_keys(server, backend)
    assert old_key not in after
    assert len(after - before) == 1
    assert len(_indexed(server, dataset.SOPInstanceUID)) == 1
    metadata = get(
        server,
        f"/studies/{dataset.StudyInstanceUID}/series/{dataset.SeriesInstanceUID}"
        f"/instances/{dataset.SOPInstanceUID}/metadata",
    ).json()
    assert metadata[0]["00204000"]["Value"] == ["replacement"]


def test_store_part_too_large_fails_alone(
    server_factory: Callable[..., ServerProcess], backend: Backend, patient_id: str
) -> None:
    server = server_factory({"DICOMWEB_MAX_PART_SIZE": "20000"})
    small = synthetic_ct(patient_id)
    del small.PixelData
    large = synthetic_ct(patient_id)
    assert len(to_bytes(small)) < 20000 < len(to_bytes(large))
    before = object_keys(server, backend)
    response = store(server, [large, small])
    assert response.status_code == 202, response.text
    body = response.json()
    (failed,) = sequence_items(body, FAILED_SOP_SEQUENCE)
    assert first(failed[FAILURE_REASON]) == OUT_OF_RESOURCES
    assert "DICOMWEB_MAX_PART_SIZE" in first(failed["00000902"])
    (stored,) = sequence_items(body, REFERENCED_SOP_SEQUENCE)
    assert first(stored[REFERENCED_SOP_INSTANCE_UID]) == small.SOPInstanceUID
    assert len(object_keys(server, backend) - before) == 1
    assert spool_files(server) == []
    assert _indexed(server, large.SOPInstanceUID) == []


def test_store_bare_dicom_body(server: ServerProcess, patient_id: str) -> None:
    dataset = synthetic_ct(patient_id)
    response = _post(server, to_bytes(dataset), "application/dicom")
    assert response.status_code == 200, response.text
    (item,) = sequence_items(response.json(), REFERENCED_SOP_SEQUENCE)
    assert first(item[RETRIEVE_URL]) == _instance_url(server, dataset)


@pytest.mark.parametrize(
    ("content_type", "named"),
    [
        ("application/json", "application/json"),
        ('multipart/related; type="application/dicom+json"; boundary=x', "application/dicom+json"),
        ("multipart/form-data; boundary=x", "multipart/form-data"),
        ("text/plain", "text/plain"),
    ],
)
def test_store_wrong_media_type_is_415(server: ServerProcess, content_type: str, named: str) -> None:
    response = _post(server, b"--x\r\n\r\n{}\r\n--x--\r\n", content_type)
    assert response.status_code == 415, response.text
    assert named in response.json()["message"]
    assert "multipart/related" in response.json()["message"]


def test_store_without_content_type_is_415(server: ServerProcess) -> None:
    response = httpx.post(
        f"{server.dicomweb}/studies", content=b"", headers={**server.headers, "Accept": DICOM_JSON}
    )
    assert response.status_code == 415, response.text
    assert "Content-Type" in response.json()["message"]


def test_store_without_boundary_parameter_is_400(server: ServerProcess) -> None:
    response = _post(server, b"--x\r\n\r\n\r\n--x--\r\n", 'multipart/related; type="application/dicom"')
    assert response.status_code == 400, response.text
    assert "boundary" in response.json()["message"]


def test_store_malformed_bodies_are_400(server: ServerProcess, backend: Backend, patient_id: str) -> None:
    boundary = new_boundary()
    content_type = stow_content_type(boundary)
    dataset = synthetic_ct(patient_id)
    data = to_bytes(dataset)
    bodies = {
        "empty": b"",
        "no boundary in the body": data,
        "closing boundary only": f"--{boundary}--\r\n".encode(),
        "truncated in the first part": multipart_body([dataset], boundary)[: len(data) // 2],
        "no closing boundary": multipart_body([dataset], boundary, close=False)[:-2],
        "headers never end": f"--{boundary}\r\nContent-Type: application/dicom\r\n".encode(),
    }
    before = object_keys(server, backend)
    for case, body in bodies.items():
        response = _post(server, body, content_type)
        assert response.status_code == 400, (case, response.text)
        assert response.json()["message"], case
    _assert_left_nothing(server, backend, before, dataset.SOPInstanceUID)


def test_store_truncated_after_a_part_keeps_it(server: ServerProcess, patient_id: str) -> None:
    complete = synthetic_ct(patient_id)
    cut = synthetic_ct(patient_id)
    boundary = new_boundary()
    body = multipart_body([complete, cut], boundary)
    response = _post(server, body[: len(body) - 1000], stow_content_type(boundary))
    assert response.status_code == 202, response.text
    assert "Warning" in response.headers
    (item,) = sequence_items(response.json(), REFERENCED_SOP_SEQUENCE)
    assert first(item[REFERENCED_SOP_INSTANCE_UID]) == complete.SOPInstanceUID
    assert _indexed(server, cut.SOPInstanceUID) == []
    assert spool_files(server) == []


def test_store_unusable_study_uid_in_path_is_400(server: ServerProcess, patient_id: str) -> None:
    dataset = synthetic_ct(patient_id)
    response = store(server, [dataset], study_instance_uid="1.2.abc")
    assert response.status_code == 400, response.text
    assert "1.2.abc" in response.json()["message"]


UNREADABLE_BROKEN_FILES = {
    "MR_truncated.dcm",
    "badVR.dcm",
    "emri_small_jpeg_2k_lossless_too_short.dcm",
    "meta_missing_tsyntax.dcm",
    "no_meta.dcm",
    "oob-monochrome-65535.dcm",
}
"""Broken files whose structure the server cannot read; the others break only inside values or
codestreams the server stores as received."""


def _broken_copy(entry: dict[str, Any]) -> bytes:
    """Give a broken file fresh UIDs where pydicom can read them.

    Several broken files are made from valid ones and keep their UIDs, which would clash with the
    valid files other tests store. A file whose UIDs cannot be read is sent as it is.
    """
    raw = path_of(entry).read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            dataset = pydicom.dcmread(io.BytesIO(raw), force=True, stop_before_pixels=True)
            uids = [str(dataset.get(keyword, "")) for keyword in IDENTITY_UIDS]
        except Exception:  # noqa: BLE001 - these files are broken on purpose
            return raw
    return restamp(raw, {}, [uid for uid in uids if re.fullmatch(r"[0-9.]{9,64}", uid)])


def test_store_broken_files_fail_cleanly(server: ServerProcess, backend: Backend) -> None:
    before = object_keys(server, backend)
    failed = set()
    for entry in entries(broken=True):
        name = entry["path"].rsplit("/", 1)[-1]
        response = store(server, [_broken_copy(entry)])
        assert response.status_code in (200, 202, 409), (name, response.text)
        for item in sequence_items(response.json(), FAILED_SOP_SEQUENCE):
            assert first(item[FAILURE_REASON]) in (CANNOT_UNDERSTAND, DATA_SET_DOES_NOT_MATCH), name
            assert first(item["00000902"]), name
            failed.add(name)
    assert UNREADABLE_BROKEN_FILES <= failed
    assert len(object_keys(server, backend) - before) == len(entries(broken=True)) - len(failed)
    assert spool_files(server) == []


def test_store_corrupt_codestream_is_kept_as_received(server: ServerProcess) -> None:
    (entry,) = [entry for entry in entries(broken=True) if entry["path"].endswith("/JPEG-lossy.dcm")]
    sent = fresh_copy(entry, {})
    response = store(server, [sent])
    assert response.status_code == 200, response.text
    path = first(sequence_items(response.json(), REFERENCED_SOP_SEQUENCE)[0][RETRIEVE_URL])
    path = path.removeprefix(server.dicomweb)

    # Converting it needs its pixels decoded, which fails before the response starts.
    for accept in ('multipart/related; type="application/dicom"', "application/dicom"):
        converted = get(server, path, headers={"Accept": accept})
        assert converted.status_code == 406, (accept, converted.text)
        assert "transfer-syntax=*" in converted.json()["message"]
    frame = get(
        server, f"{path}/frames/1", headers={"Accept": 'multipart/related; type="application/octet-stream"'}
    )
    assert frame.status_code == 406, frame.text
    assert "transfer-syntax=*" in frame.json()["message"]

    as_stored = get(
        server, path, headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'}
    )
    assert as_stored.status_code == 200
    assert [part.content for part in parse_multipart(as_stored)] == [sent]


@pytest.mark.parametrize("preamble", [b"", b"\0" * 128 + b"DICM"], ids=["bare", "preamble"])
def test_store_zero_filled_body_rejected(server: ServerProcess, backend: Backend, preamble: bytes) -> None:
    before = object_keys(server, backend)
    response = _post(server, preamble + b"\0" * 5_000_000, "application/dicom")
    assert response.status_code == 409, response.text
    (item,) = sequence_items(response.json(), FAILED_SOP_SEQUENCE)
    assert first(item[FAILURE_REASON]) == CANNOT_UNDERSTAND
    assert "it starts with the tag (0000,0000)" in first(item["00000902"])
    assert object_keys(server, backend) == before
    assert spool_files(server) == []


def _stalled_request(server: ServerProcess, path: str, content_type: str, sent: bytes) -> bytes:
    """Announce a body of 1,000,000 bytes, send ``sent`` and wait for the response."""
    host, port = server.url.removeprefix("http://").split(":")
    head = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        *(f"{name}: {value}" for name, value in server.headers.items()),
        f"Content-Type: {content_type}",
        "Accept: application/dicom+json",
        "Content-Length: 1000000",
    ]
    answer = b""
    with socket.create_connection((host, int(port)), timeout=60) as connection:
        connection.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + sent)
        # The server closes the connection after its response, because the body was not read to its end.
        while received := connection.recv(65536):
            answer += received
    return answer


def test_store_stalled_body_times_out(server_factory: Callable[..., ServerProcess], backend: Backend) -> None:
    server = server_factory({"DICOMWEB_BODY_READ_TIMEOUT": "1"})
    before = object_keys(server, backend)
    boundary = new_boundary()
    multipart_start = f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + b"\0" * 10
    cases = [
        ("/dicom-web/studies", "application/dicom", b"\0" * 10),
        ("/dicom-web/studies", stow_content_type(boundary), multipart_start),
        ("/admin/api/organisations", "application/json", b'{"name": "'),
    ]
    for path, content_type, sent in cases:
        answer = _stalled_request(server, path, content_type, sent)
        assert answer.startswith(b"HTTP/1.1 408"), (path, answer[:300])
        assert b"DICOMWEB_BODY_READ_TIMEOUT" in answer, path
    assert object_keys(server, backend) == before
    assert spool_files(server) == []


def test_store_external_same_bytes_held_once(
    server: ServerProcess, backend: Backend, admin_api: AdminApi, patient_id: str
) -> None:
    sender = admin_api.add_organisation(unique("Resending Hospital"), affiliated=False)
    headers = admin_api.token_headers(sender, "store")
    dataset = synthetic_ct(patient_id)
    before = object_keys(server, backend)

    first_answer = store(server, [dataset], headers=headers)
    second_answer = store(server, [dataset], headers=headers)

    assert first_answer.status_code == second_answer.status_code == 200, second_answer.text
    assert first_answer.json() == second_answer.json()
    held = admin_api.quarantine(organisation=sender)
    assert [item["sop_instance_uid"] for item in held] == [dataset.SOPInstanceUID]
    assert len(object_keys(server, backend) - before) == 1
