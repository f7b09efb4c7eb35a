"""UIDs in request paths and WADO-URI parameters: a malformed one is a 400 that names it.

The check depends on the syntax of the UID alone, so the response is the same for a study the
requester may not see as for one that does not exist.
"""

from __future__ import annotations

import httpx
import pytest
from pydicom.uid import generate_uid

from tests.e2e.dicomweb_http import TIMEOUT, get
from tests.identity import AdminApi, store, unique
from tests.services import ServerProcess
from tests.testdata import synthetic_ct

INVALID_UIDS = ("abc", "1" * 65, "1..2", "1.2.", "1.2.3a")

SUFFIXES = (
    "",
    "/metadata",
    "/rendered",
    "/thumbnail",
    "/series",
    "/instances",
    "/series/{series}",
    "/series/{series}/metadata",
    "/series/{series}/instances",
    "/series/{series}/rendered",
    "/series/{series}/instances/{instance}",
    "/series/{series}/instances/{instance}/metadata",
    "/series/{series}/instances/{instance}/rendered",
    "/series/{series}/instances/{instance}/thumbnail",
    "/series/{series}/instances/{instance}/frames/1",
    "/series/{series}/instances/{instance}/frames/1/rendered",
    "/series/{series}/instances/{instance}/bulkdata/7FE00010",
)


def _paths(study: str, series: str, instance: str) -> list[str]:
    return [f"/studies/{study}" + suffix.format(series=series, instance=instance) for suffix in SUFFIXES]


@pytest.fixture(scope="module")
def stored(server: ServerProcess) -> tuple[str, str, str]:
    dataset = synthetic_ct(f"UIDPATH-{generate_uid()[-12:]}")
    response = store(server, dataset)
    assert response.status_code == 200, response.text
    return dataset.StudyInstanceUID, dataset.SeriesInstanceUID, dataset.SOPInstanceUID


@pytest.mark.parametrize("invalid", INVALID_UIDS)
def test_path_invalid_study_uid_named(
    server: ServerProcess, stored: tuple[str, str, str], invalid: str
) -> None:
    _, series, instance = stored
    for path in _paths(invalid, series, instance):
        response = get(server, path)
        assert response.status_code == 400, (path, response.text)
        assert f"invalid StudyInstanceUID {invalid!r} in the request path" in response.json()["message"]


@pytest.mark.parametrize("invalid", INVALID_UIDS)
def test_path_invalid_series_and_instance_uid_named(
    server: ServerProcess, stored: tuple[str, str, str], invalid: str
) -> None:
    study, series, instance = stored
    for path in _paths(study, invalid, instance)[6:]:
        response = get(server, path)
        assert response.status_code == 400, (path, response.text)
        assert f"invalid SeriesInstanceUID {invalid!r}" in response.json()["message"]
    for path in _paths(study, series, invalid)[10:]:
        response = get(server, path)
        assert response.status_code == 400, (path, response.text)
        assert f"invalid SOPInstanceUID {invalid!r}" in response.json()["message"]


def test_path_invalid_uid_in_store_path(server: ServerProcess) -> None:
    headers = {**server.headers, "Content-Type": "application/dicom", "Accept": "application/dicom+json"}
    response = httpx.post(f"{server.dicomweb}/studies/abc", content=b"", headers=headers, timeout=TIMEOUT)
    assert response.status_code == 400
    assert "invalid StudyInstanceUID 'abc'" in response.json()["message"]


def test_path_invalid_uid_same_for_hidden_and_absent(
    server: ServerProcess, admin_api: AdminApi, stored: tuple[str, str, str]
) -> None:
    outsider = admin_api.add_organisation(unique("UID Path Outsider"), affiliated=False)
    external = admin_api.token_headers(outsider, "read")
    study, series, instance = stored
    # Of the same length as the stored one, so that both break the same rule once a letter follows.
    absent = (generate_uid() + "1" * 64)[: len(study)]

    # The hidden study's UID and an absent one, each followed by a letter, get the same response.
    hidden_paths = _paths(study + "x", series, instance)
    absent_paths = _paths(absent + "x", series, instance)
    for hidden_path, absent_path in zip(hidden_paths, absent_paths, strict=True):
        hidden_answer = get(server, hidden_path, headers=external)
        absent_answer = get(server, absent_path, headers=external)
        assert hidden_answer.status_code == 400, (hidden_path, hidden_answer.text)
        assert absent_answer.status_code == 400, (absent_path, absent_answer.text)
        assert hidden_answer.text.replace(study, absent) == absent_answer.text, hidden_path

    # Well-formed UIDs reach the look-up, where hidden and absent are alike as well.
    for hidden_path, absent_path in zip(
        _paths(study, series, instance), _paths(absent, series, instance), strict=True
    ):
        hidden_answer = get(server, hidden_path, headers=external)
        absent_answer = get(server, absent_path, headers=external)
        assert hidden_answer.status_code == absent_answer.status_code, hidden_path
        assert hidden_answer.content == absent_answer.content, hidden_path


@pytest.mark.parametrize(
    ("name", "value"), [("studyUID", "abc"), ("seriesUID", "1..2"), ("objectUID", "9" * 65)]
)
def test_wado_uri_invalid_uid_named(
    server: ServerProcess, stored: tuple[str, str, str], name: str, value: str
) -> None:
    study, series, instance = stored
    params = {
        "requestType": "WADO",
        "studyUID": study,
        "seriesUID": series,
        "objectUID": instance,
        name: value,
    }
    response = httpx.get(f"{server.url}/wado", params=params, headers=server.headers, timeout=TIMEOUT)
    assert response.status_code == 400
    assert f"{name} value {value!r} is not a valid UID" in response.json()["message"]
