"""HTTP as browsers and reverse proxies need it: CORS, absolute URLs, /healthz and shutdown."""

from __future__ import annotations

import signal
from collections.abc import Callable

import httpx
import pytest
from pydicom.uid import generate_uid

from tests.e2e.dicomweb_http import DICOM_JSON, TIMEOUT, get, sequence_items, store
from tests.services import ServerProcess
from tests.testdata import synthetic_ct, to_bytes

VIEWER = "http://viewer.example:3000"
OTHER_ORIGIN = "http://elsewhere.example"
REQUESTED_HEADERS = ("Authorization", "Accept", "Content-Type")
EXPOSED_HEADERS = ("Warning", "ETag", "Location")
FORWARDED_ROOT = "https://pacs.example.org/pacs/dicom-web"


@pytest.fixture
def cors_server(server_factory: Callable[..., ServerProcess]) -> ServerProcess:
    return server_factory({"DICOMWEB_CORS_ORIGINS": f"{VIEWER},http://second.example"})


def _header_list(response: httpx.Response, name: str) -> set[str]:
    return {item.strip().lower() for item in response.headers.get(name, "").split(",") if item.strip()}


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_cors_preflight(cors_server: ServerProcess, method: str) -> None:
    # A browser sends a preflight without credentials, so this request carries none.
    response = httpx.options(
        f"{cors_server.dicomweb}/studies",
        headers={
            "Origin": VIEWER,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": ", ".join(REQUESTED_HEADERS),
        },
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == VIEWER
    assert method.lower() in _header_list(response, "access-control-allow-methods")
    allowed = _header_list(response, "access-control-allow-headers")
    for header in REQUESTED_HEADERS:
        assert header.lower() in allowed


def test_cors_exposes_headers(cors_server: ServerProcess) -> None:
    response = get(cors_server, "/studies", params={"limit": "1"}, headers={"Origin": VIEWER})
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == VIEWER
    exposed = _header_list(response, "access-control-expose-headers")
    for header in EXPOSED_HEADERS:
        assert header.lower() in exposed


def test_cors_headers_on_errors(cors_server: ServerProcess) -> None:
    unknown = generate_uid()
    responses = {
        404: get(cors_server, f"/studies/{unknown}/metadata", headers={"Origin": VIEWER}),
        400: get(cors_server, "/studies", params={"NoSuchKeyword": "x"}, headers={"Origin": VIEWER}),
        406: get(cors_server, "/studies", headers={"Origin": VIEWER, "Accept": "application/dicom+xml"}),
        415: httpx.post(
            f"{cors_server.dicomweb}/studies",
            content=b"{}",
            headers={**cors_server.headers, "Origin": VIEWER, "Content-Type": "application/json"},
            timeout=TIMEOUT,
        ),
    }
    # A browser whose token expired reads the 401 only with CORS headers; it is sent without one.
    responses[401] = httpx.get(f"{cors_server.dicomweb}/studies", headers={"Origin": VIEWER}, timeout=TIMEOUT)
    for status, response in responses.items():
        assert response.status_code == status, response.text
        assert response.headers["access-control-allow-origin"] == VIEWER, status
        assert "warning" in _header_list(response, "access-control-expose-headers"), status


def test_cors_other_origin_gets_none(cors_server: ServerProcess) -> None:
    response = get(cors_server, "/studies", params={"limit": "1"}, headers={"Origin": OTHER_ORIGIN})
    assert response.status_code == 200
    assert not [name for name in response.headers if name.lower().startswith("access-control-")]

    preflight = httpx.options(
        f"{cors_server.dicomweb}/studies",
        headers={"Origin": OTHER_ORIGIN, "Access-Control-Request-Method": "GET"},
        timeout=TIMEOUT,
    )
    assert not [name for name in preflight.headers if name.lower().startswith("access-control-")]
    assert preflight.status_code == 403
    message = preflight.json()["message"]
    assert repr(OTHER_ORIGIN) in message
    assert "DICOMWEB_CORS_ORIGINS" in message


def test_cors_unconfigured_sends_none(server: ServerProcess) -> None:
    response = get(server, "/studies", params={"limit": "1"}, headers={"Origin": VIEWER})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


def test_cors_unconfigured_preflight_forbidden(server: ServerProcess) -> None:
    # A browser sends a preflight without credentials, so this request carries none.
    preflight = httpx.options(
        f"{server.dicomweb}/studies",
        headers={"Origin": VIEWER, "Access-Control-Request-Method": "POST"},
        timeout=TIMEOUT,
    )
    assert preflight.status_code == 403
    assert f"the origin {VIEWER!r} is not allowed" in preflight.json()["message"]
    assert not [name for name in preflight.headers if name.lower().startswith("access-control-")]


def _store_one(
    server: ServerProcess, patient_id: str, headers: dict[str, str]
) -> tuple[str, dict[str, object]]:
    dataset = synthetic_ct(patient_id)
    response = store(server, [dataset], headers=headers)
    assert response.status_code == 200, response.text
    return str(dataset.StudyInstanceUID), response.json()


def _urls(server: ServerProcess, study_instance_uid: str, headers: dict[str, str]) -> list[str]:
    """Return the RetrieveURL of a study search and every BulkDataURI of the study's metadata."""
    (study,) = get(
        server, "/studies", params={"StudyInstanceUID": study_instance_uid}, headers=headers
    ).json()
    urls = list(study["00081190"]["Value"])
    for document in get(server, f"/studies/{study_instance_uid}/metadata", headers=headers).json():
        urls += [element["BulkDataURI"] for element in document.values() if "BulkDataURI" in element]
    return urls


PROXY_HEADERS = {
    "forwarded": {
        "Forwarded": 'for=192.0.2.7;proto=https;host="pacs.example.org"',
        "X-Forwarded-Prefix": "/pacs",
    },
    "x-forwarded": {
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "pacs.example.org",
        "X-Forwarded-Prefix": "/pacs",
    },
}


@pytest.mark.parametrize("form", list(PROXY_HEADERS))
def test_urls_from_trusted_proxy(
    server_factory: Callable[..., ServerProcess], patient_id: str, form: str
) -> None:
    server = server_factory({"DICOMWEB_TRUSTED_PROXIES": "127.0.0.1/32", "DICOMWEB_PUBLIC_BASE_URL": ""})
    headers = PROXY_HEADERS[form]
    study_uid, stored = _store_one(server, patient_id, headers)
    assert stored["00081190"]["Value"] == [f"{FORWARDED_ROOT}/studies/{study_uid}"]
    (item,) = sequence_items(stored, "00081199")
    assert item["00081190"]["Value"][0].startswith(f"{FORWARDED_ROOT}/studies/{study_uid}/series/")
    urls = _urls(server, study_uid, headers)
    assert len(urls) >= 2
    for url in urls:
        assert url.startswith(f"{FORWARDED_ROOT}/studies/{study_uid}"), url


@pytest.mark.parametrize("trusted", ["10.0.0.0/8", ""], ids=["other proxy", "none"])
def test_urls_from_untrusted_client(
    server_factory: Callable[..., ServerProcess], patient_id: str, trusted: str
) -> None:
    server = server_factory({"DICOMWEB_TRUSTED_PROXIES": trusted, "DICOMWEB_PUBLIC_BASE_URL": ""})
    headers = {**PROXY_HEADERS["forwarded"], **PROXY_HEADERS["x-forwarded"]}
    study_uid, stored = _store_one(server, patient_id, headers)
    assert stored["00081190"]["Value"] == [f"{server.dicomweb}/studies/{study_uid}"]
    for url in _urls(server, study_uid, headers):
        assert url.startswith(f"{server.dicomweb}/studies/{study_uid}"), url


def test_urls_from_public_base_url(server_factory: Callable[..., ServerProcess], patient_id: str) -> None:
    public = "https://images.example.net/archive"
    server = server_factory({"DICOMWEB_TRUSTED_PROXIES": "127.0.0.1", "DICOMWEB_PUBLIC_BASE_URL": public})
    headers = PROXY_HEADERS["forwarded"]
    study_uid, stored = _store_one(server, patient_id, headers)
    assert stored["00081190"]["Value"] == [f"{public}/dicom-web/studies/{study_uid}"]
    for url in _urls(server, study_uid, headers):
        assert url.startswith(f"{public}/dicom-web/studies/{study_uid}"), url


def test_urls_invalid_host_rejected(server_factory: Callable[..., ServerProcess]) -> None:
    server = server_factory({"DICOMWEB_TRUSTED_PROXIES": "127.0.0.1/32", "DICOMWEB_PUBLIC_BASE_URL": ""})
    cases = [
        ({"Host": '"><script>alert(1)</script>'}, "invalid Host header"),
        ({"Host": "pacs.example.org:99999"}, "invalid Host header"),
        ({"X-Forwarded-Host": "evil.example/<x>"}, "invalid forwarded host"),
        ({"Forwarded": 'host="a b"'}, "invalid forwarded host"),
        ({"X-Forwarded-Proto": "javascript"}, "invalid forwarded scheme"),
        ({"X-Forwarded-Prefix": '/pacs"><x'}, "invalid forwarded prefix"),
    ]
    for headers, named in cases:
        response = get(server, "/studies", params={"limit": "1"}, headers=headers)
        assert response.status_code == 400, (headers, response.text)
        assert named in response.json()["message"], headers
    assert get(server, "/studies", params={"limit": "1"}, headers={"Host": "[::1]:8080"}).status_code == 200


def test_healthz(server: ServerProcess) -> None:
    # Load balancers probe health without credentials, so this request carries none.
    response = httpx.get(f"{server.url}/healthz", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_sigterm_lets_retrieval_finish(server_factory: Callable[..., ServerProcess], patient_id: str) -> None:
    server = server_factory()
    dataset = synthetic_ct(patient_id)
    dataset.Rows, dataset.Columns, dataset.NumberOfFrames = 512, 512, 96
    dataset.PixelData = bytes(range(256)) * (512 * 512 * 2 * 96 // 256)
    sent = to_bytes(dataset)
    assert store(server, [sent]).status_code == 200
    path = (
        f"{server.dicomweb}/studies/{dataset.StudyInstanceUID}/series/{dataset.SeriesInstanceUID}"
        f"/instances/{dataset.SOPInstanceUID}"
    )

    received = bytearray()
    headers = {**server.headers, "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'}
    with httpx.stream("GET", path, headers=headers, timeout=TIMEOUT) as response:
        assert response.status_code == 200
        chunks = response.iter_bytes()
        while len(received) < 1024 * 1024:
            received += next(chunks)
        server.process.send_signal(signal.SIGTERM)
        for chunk in chunks:
            received += chunk

    assert sent in received
    assert received.endswith(b"--\r\n")
    assert server.process.wait(timeout=60) == 0
    assert "Traceback" not in server.log()


def test_search_content_type_is_dicom_json(server: ServerProcess) -> None:
    response = get(server, "/studies", params={"limit": "1"}, headers={"Accept": DICOM_JSON})
    assert response.headers["content-type"].startswith(DICOM_JSON)


@pytest.mark.parametrize("path", ["/studies", f"/studies/{generate_uid()}"])
def test_method_not_allowed_lists_every_method(server: ServerProcess, path: str) -> None:
    response = httpx.delete(f"{server.dicomweb}{path}", headers=server.headers, timeout=TIMEOUT)
    assert response.status_code == 405
    allowed = {method.strip() for method in response.headers["allow"].split(",")}
    assert {"GET", "POST"} <= allowed
