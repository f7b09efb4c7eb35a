"""Reciprocal search between two archives of our server, each its own organisation, on loopback.

Site A and site B each hold studies, know the other as an external organisation with a read
token, and register the other as a peer with that token (A through the CLI, B through the admin
API). Each authorizes some of its patients to the other. A user of either site searches both
through /federation/dicom-web and finds in the other only what the other's authorizations
cover, retrieves exactly that through its own site, and imports it. A peer that accepts
connections and never responds, and one that refuses them, leave the search returning a
Warning and an audit entry.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from pydicom.dataset import Dataset

from tests.identity import store
from tests.services import LOOPBACK, Backend
from tests.sites import Site, own_backend, start_site
from tests.testdata import synthetic_ct, to_bytes

RUN = uuid.uuid4().hex[:8]
ACCESSION = f"F{RUN}"
AS_STORED = 'multipart/related; type="application/dicom"; transfer-syntax=*'
FEDERATION = "/federation/dicom-web"
SOURCE = "00111001"
SOURCE_RETRIEVE_URL = "00111002"
PRIVATE_CREATOR = "00110010"


def patient(key: str) -> str:
    return f"{key}-{RUN}"


@dataclass
class Federation:
    """Two sites that are peers of each other, and the studies each holds, by label."""

    a: Site
    b: Site
    studies: dict[str, Dataset] = field(default_factory=dict)
    where: dict[str, Site] = field(default_factory=dict)

    def uid(self, label: str) -> str:
        return str(self.studies[label].StudyInstanceUID)

    def add(self, site: Site, label: str, dataset: Dataset) -> None:
        response = store(site.server, dataset)
        assert response.status_code == 200, response.text
        self.studies[label] = dataset
        self.where[label] = site


def instance_path(dataset: Dataset) -> str:
    return (
        f"/studies/{dataset.StudyInstanceUID}/series/{dataset.SeriesInstanceUID}"
        f"/instances/{dataset.SOPInstanceUID}"
    )


def search(site: Site, path: str, headers: dict[str, str] | None = None, **params: str) -> httpx.Response:
    response = site.request("GET", FEDERATION + path, headers=headers, params=params)
    assert response.status_code == 200, response.text
    return response


def found(response: httpx.Response) -> list[tuple[str, str]]:
    """Return (source, StudyInstanceUID) of each result, in response order."""
    return [(item[SOURCE]["Value"][0], item["0020000D"]["Value"][0]) for item in response.json()]


def ct(key: str, study_date: str, **options: Any) -> Dataset:
    return synthetic_ct(patient(key), accession_number=ACCESSION, study_date=study_date, **options)


def grant(site: Site, organisation: str, key: str, issuer: str = "") -> None:
    site.admin.grant(patient_id=patient(key), issuer_of_patient_id=issuer, organisations=[organisation])


@pytest.fixture(scope="module")
def federation(
    backend: Backend, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Federation]:
    with own_backend(backend, request) as backend_a, own_backend(backend, request) as backend_b:
        a = start_site("a", backend_a, tmp_path_factory.mktemp("site-a"))
        b = start_site("b", backend_b, tmp_path_factory.mktemp("site-b"))
        try:
            world = Federation(a, b)
            _link(world)
            _fill(world)
            yield world
        finally:
            a.close()
            b.close()


def _link(world: Federation) -> None:
    a, b = world.a, world.b
    a.admin.add_organisation("Archive B", affiliated=False)
    b.admin.add_organisation("Archive A", affiliated=False)
    token_for_a = b.token("Archive A", "read")
    token_for_b = a.token("Archive B", "read")

    added = a.archive.run(
        ["peer", "add", "b", "--url", b.server.dicomweb, "--token", token_for_a, "--as-org", "Archive B"]
    )
    assert added.returncode == 0, added.stderr
    assert token_for_a not in added.stdout + added.stderr
    response = b.request(
        "POST",
        "/admin/api/peers",
        json={"name": "a", "url": a.server.dicomweb, "token": token_for_b, "as_organisation": "Archive A"},
    )
    assert response.status_code == 201, response.text


def _fill(world: Federation) -> None:
    a, b = world.a, world.b
    world.add(a, "A_SHARED", ct("A-SHARED", "20230105"))
    world.add(a, "A_PRIVATE", ct("A-PRIVATE", "20230106"))
    world.add(b, "B_SHARED", ct("B-SHARED", "20230107"))
    world.add(b, "B_PRIVATE", ct("B-PRIVATE", "20230108"))
    grant(a, "Archive B", "A-SHARED")
    grant(b, "Archive A", "B-SHARED")

    # The same person at both facilities, under each facility's own PatientID and issuer.
    for label, site, issuer in (("JANE_A", a, "HOSP-A"), ("JANE_B", b, "HOSP-B")):
        dataset = synthetic_ct(
            patient(label),
            patient_name=f"Doe{RUN}^Jane",
            accession_number=f"J{RUN}",
            issuer_of_patient_id=issuer,
        )
        dataset.PatientBirthDate = "19700101"
        world.add(site, label, dataset)
    grant(b, "Archive A", "JANE_B", issuer="HOSP-B")

    # Four studies of one patient over two sites, for paging.
    for label, site, date in (
        ("P1", a, "20210101"),
        ("P2", b, "20220101"),
        ("P3", a, "20230101"),
        ("P4", b, "20240101"),
    ):
        world.add(site, label, synthetic_ct(patient("PAGE"), accession_number=f"P{RUN}", study_date=date))
    grant(b, "Archive A", "PAGE")


def test_search_finds_peer_authorized_only(federation: Federation) -> None:
    response = search(federation.a, "/studies", AccessionNumber=ACCESSION)

    assert sorted(found(response)) == sorted(
        [
            ("local", federation.uid("A_SHARED")),
            ("local", federation.uid("A_PRIVATE")),
            ("b", federation.uid("B_SHARED")),
        ]
    )
    assert "warning" not in response.headers


def test_search_reciprocal(federation: Federation) -> None:
    response = search(federation.b, "/studies", AccessionNumber=ACCESSION)

    assert sorted(found(response)) == sorted(
        [
            ("local", federation.uid("B_SHARED")),
            ("local", federation.uid("B_PRIVATE")),
            ("a", federation.uid("A_SHARED")),
        ]
    )


def test_search_result_urls(federation: Federation) -> None:
    a = federation.a
    results = {
        item[SOURCE]["Value"][0]: item for item in search(a, "/studies", PatientID=patient("B-SHARED")).json()
    }

    peer_result = results["b"]
    uid = federation.uid("B_SHARED")
    assert peer_result["00081190"]["Value"] == [f"{a.server.url}{FEDERATION}/peers/b/studies/{uid}"]
    assert peer_result[SOURCE_RETRIEVE_URL]["Value"] == [f"{federation.b.server.dicomweb}/studies/{uid}"]
    assert peer_result[PRIVATE_CREATOR]["Value"] == ["DICOMWEB-SERVER FEDERATION"]
    assert list(results) == ["b"]


def test_search_series_and_instances(federation: Federation) -> None:
    a = federation.a
    dataset = federation.studies["B_SHARED"]
    study, series = dataset.StudyInstanceUID, dataset.SeriesInstanceUID

    series_results = search(a, f"/studies/{study}/series").json()
    instance_results = search(a, "/instances", PatientID=patient("B-SHARED")).json()

    assert [item["00081190"]["Value"][0] for item in series_results] == [
        f"{a.server.url}{FEDERATION}/peers/b/studies/{study}/series/{series}"
    ]
    assert [item["00080018"]["Value"][0] for item in instance_results] == [dataset.SOPInstanceUID]
    assert instance_results[0][SOURCE]["Value"] == ["b"]


def test_search_private_study_of_peer_empty(federation: Federation) -> None:
    a = federation.a
    uid = federation.uid("B_PRIVATE")

    assert search(a, "/studies", PatientID=patient("B-PRIVATE")).json() == []
    assert search(a, f"/studies/{uid}/series").json() == []


def test_retrieve_through_peer(federation: Federation) -> None:
    a, b = federation.a, federation.b
    dataset = federation.studies["B_SHARED"]
    path = instance_path(dataset)

    relayed = a.request(
        "GET", f"{FEDERATION}/peers/b{path}", headers={**a.server.headers, "Accept": AS_STORED}
    )
    direct = b.request("GET", "/dicom-web" + path, headers={**b.server.headers, "Accept": AS_STORED})

    assert relayed.status_code == 200, relayed.text
    assert relayed.headers["content-type"].startswith("multipart/related")
    assert _multipart_body(relayed) == _multipart_body(direct)


def test_retrieve_frames_through_peer(federation: Federation) -> None:
    a = federation.a
    dataset = federation.studies["B_SHARED"]
    path = (
        f"{FEDERATION}/peers/b/studies/{dataset.StudyInstanceUID}/series/{dataset.SeriesInstanceUID}"
        f"/instances/{dataset.SOPInstanceUID}/frames/1"
    )

    response = a.request(
        "GET",
        path,
        headers={**a.server.headers, "Accept": "multipart/related; type=application/octet-stream"},
    )

    assert response.status_code == 200, response.text
    assert dataset.PixelData in response.content


def test_metadata_bulkdata_through_archive(federation: Federation) -> None:
    a = federation.a
    uid = federation.uid("B_SHARED")

    metadata = a.request("GET", f"{FEDERATION}/peers/b/studies/{uid}/metadata")
    pixel_uri = metadata.json()[0]["7FE00010"]["BulkDataURI"]
    pixels = a.request(
        "GET",
        pixel_uri.removeprefix(a.server.url),
        headers={**a.server.headers, "Accept": "multipart/related; type=application/octet-stream"},
    )

    assert metadata.status_code == 200
    assert pixel_uri.startswith(f"{a.server.url}{FEDERATION}/peers/b/studies/{uid}/")
    assert pixels.status_code == 200, pixels.text
    assert federation.studies["B_SHARED"].PixelData in pixels.content


def test_retrieve_unauthorized_is_not_found(federation: Federation) -> None:
    a = federation.a
    hidden = federation.uid("B_PRIVATE")

    study = a.request(
        "GET", f"{FEDERATION}/peers/b/studies/{hidden}", headers={**a.server.headers, "Accept": AS_STORED}
    )
    metadata = a.request("GET", f"{FEDERATION}/peers/b/studies/{hidden}/metadata")

    assert study.status_code == 404
    assert study.json()["message"] == "not found"
    assert metadata.status_code == 404
    assert metadata.json()["message"] == "not found"


def test_retrieve_unknown_peer_and_path(federation: Federation) -> None:
    a = federation.a
    uid = federation.uid("B_SHARED")

    assert a.request("GET", f"{FEDERATION}/peers/nobody/studies/{uid}").status_code == 404
    assert a.request("GET", f"{FEDERATION}/peers/b/admin/api/peers").status_code == 404


def test_retrieval_audited(federation: Federation) -> None:
    a = federation.a
    uid = federation.uid("B_SHARED")

    a.request("GET", f"{FEDERATION}/peers/b/studies/{uid}/metadata")

    entries = [
        entry
        for entry in a.audit("federated-retrieve")
        if [study["study_instance_uid"] for study in entry["studies"]] == [uid]
    ]
    assert entries
    assert entries[-1]["peer"] == "b"
    assert entries[-1]["status"] == 200
    assert entries[-1]["level"] == "study"


def test_import_from_peer(federation: Federation) -> None:
    a = federation.a
    dataset = ct("IMPORTED", "20230110")
    federation.add(federation.b, "IMPORTED", dataset)
    grant(federation.b, "Archive A", "IMPORTED")

    response = a.request(
        "POST",
        f"{FEDERATION}/peers/b/studies/{dataset.StudyInstanceUID}/import",
        headers={**a.server.headers, "Accept": "application/dicom+json"},
    )
    local = a.request("GET", "/dicom-web/studies", params={"PatientID": patient("IMPORTED")})
    stored = a.request(
        "GET",
        "/dicom-web" + instance_path(dataset),
        headers={**a.server.headers, "Accept": AS_STORED},
    )

    assert response.status_code == 200, response.text
    assert [item["0020000D"]["Value"][0] for item in local.json()] == [dataset.StudyInstanceUID]
    assert to_bytes(dataset) in stored.content
    imports = [
        entry
        for entry in a.audit("import")
        if entry["studies"][0]["study_instance_uid"] == dataset.StudyInstanceUID
    ]
    assert [(entry["peer"], entry["instances"], entry["outcome"]) for entry in imports] == [("b", 1, 0)]


def test_import_unauthorized_not_found(federation: Federation) -> None:
    a = federation.a

    response = a.request("POST", f"{FEDERATION}/peers/b/studies/{federation.uid('B_PRIVATE')}/import")

    assert response.status_code == 404
    assert a.request("GET", "/dicom-web/studies", params={"PatientID": patient("B-PRIVATE")}).json() == []


def test_import_needs_store_scope(federation: Federation) -> None:
    a = federation.a
    a.admin.add_organisation(f"Readers {RUN}", affiliated=True)
    reader = a.headers(f"Readers {RUN}", "read")

    response = a.request(
        "POST", f"{FEDERATION}/peers/b/studies/{federation.uid('B_SHARED')}/import", headers=reader
    )

    assert response.status_code == 403
    assert "store" in response.json()["message"]


def test_external_requester_sees_local_only(federation: Federation) -> None:
    a = federation.a
    as_b = a.headers("Archive B", "read", "store")

    response = search(a, "/studies", headers=as_b, AccessionNumber=ACCESSION)
    retrieval = a.request("GET", f"{FEDERATION}/peers/b/studies/{federation.uid('B_SHARED')}", headers=as_b)
    imported = a.request(
        "POST", f"{FEDERATION}/peers/b/studies/{federation.uid('B_SHARED')}/import", headers=as_b
    )

    assert found(response) == [("local", federation.uid("A_SHARED"))]
    assert "only for users of this archive's own organisation" in response.headers["warning"]
    assert retrieval.status_code == 403
    assert imported.status_code == 403


def test_identity_across_issuers(federation: Federation) -> None:
    a = federation.a
    by_name = search(a, "/studies", PatientName=f"Doe{RUN}^Jane", PatientBirthDate="19700101")
    by_id = search(a, "/studies", PatientID=patient("JANE_B"), IssuerOfPatientID="HOSP-B")
    other_issuer = search(a, "/studies", PatientID=patient("JANE_B"), IssuerOfPatientID="HOSP-A")

    identities = sorted(
        (item[SOURCE]["Value"][0], item["00100020"]["Value"][0], item["00100021"]["Value"][0])
        for item in by_name.json()
    )
    assert identities == [("b", patient("JANE_B"), "HOSP-B"), ("local", patient("JANE_A"), "HOSP-A")]
    assert found(by_id) == [("b", federation.uid("JANE_B"))]
    assert found(other_issuer) == []


def test_paging_over_sources(federation: Federation) -> None:
    a = federation.a
    pages = [
        search(a, "/studies", PatientID=patient("PAGE"), limit="2", offset=str(offset))
        for offset in (0, 2, 4)
    ]

    assert found(pages[0]) == [("b", federation.uid("P4")), ("local", federation.uid("P3"))]
    assert found(pages[1]) == [("b", federation.uid("P2")), ("local", federation.uid("P1"))]
    assert found(pages[2]) == []
    assert "additional results" in pages[0].headers["warning"]
    assert "warning" not in pages[1].headers


def test_paging_within_source_order(federation: Federation) -> None:
    a = federation.a

    whole = search(a, "/studies", PatientID=patient("PAGE"))
    one_by_one = [
        found(search(a, "/studies", PatientID=patient("PAGE"), limit="1", offset=str(offset)))[0]
        for offset in range(4)
    ]

    assert one_by_one == found(whole)


def test_search_audited_per_peer(federation: Federation) -> None:
    a = federation.a
    before = len(a.audit("federated-query"))

    search(a, "/studies", PatientID=patient("A-SHARED"))

    entries = a.audit("federated-query")[before:]
    assert [(entry["peer"], entry["outcome"]) for entry in entries] == [("b", 0)]


class SilentPeer:
    """A loopback port that accepts connections and never responds."""

    def __init__(self) -> None:
        self.listener = socket.create_server((LOOPBACK, 0))
        self.port = self.listener.getsockname()[1]
        self.connections: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(connection)

    def close(self) -> None:
        self.listener.close()
        for connection in self.connections:
            connection.close()


def refused_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def test_slow_and_dead_peers_warn(federation: Federation) -> None:
    a = federation.a
    silent = SilentPeer()
    for name, port in (("slow", silent.port), ("dead", refused_port())):
        added = a.request(
            "POST",
            "/admin/api/peers",
            json={
                "name": name,
                "url": f"http://{LOOPBACK}:{port}/dicom-web",
                "token": "unused",
                "timeout": 1,
            },
        )
        assert added.status_code == 201, added.text
    before = len(a.audit("federated-query"))
    try:
        # The client's own timeout only bounds a hang, because the archive responds after about 1 s.
        response = a.request(
            "GET", f"{FEDERATION}/studies", params={"AccessionNumber": ACCESSION}, timeout=30
        )
    finally:
        for name in ("slow", "dead"):
            a.request("DELETE", f"/admin/api/peers/{name}")
        silent.close()

    assert response.status_code == 200, response.text
    assert ("b", federation.uid("B_SHARED")) in found(response)
    warning = response.headers["warning"]
    assert "peer slow did not respond within 1 s; its results are missing" in warning
    assert "peer dead refused the connection" in warning
    failures = {entry["peer"]: entry for entry in a.audit("federated-query")[before:]}
    assert failures["slow"]["outcome"] == 8
    assert failures["slow"]["failure_reason"] == "did not respond within 1 s"
    assert failures["dead"]["outcome"] == 8
    assert failures["b"]["outcome"] == 0


class StubPeer:
    """A loopback HTTP server that responds to every GET with one fixed status and body."""

    def __init__(self, status: int, body: bytes, content_type: str = "application/dicom+json") -> None:
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
                stub.requests.append(dict(self.headers))
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "http://127.0.0.1:9/elsewhere")
                if body:
                    self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *arguments: object) -> None:
                pass

        self.requests: list[dict[str, str]] = []
        self.server = http.server.ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.url = f"http://{LOOPBACK}:{self.server.server_address[1]}/dicom-web"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize(
    ("status", "body", "warning"),
    [
        (204, b"", None),
        (200, b"[]", None),
        (401, b'{"message": "no"}', "peer stub rejected this archive's credentials (HTTP 401)"),
        (500, b"oops", "peer stub responded with HTTP 500"),
        (200, b"<html>not json</html>", "peer stub responded with a body that is not a DICOM JSON array"),
        (307, b"", "peer stub responded with a redirect (HTTP 307), which is not followed"),
    ],
)
def test_peer_responses(federation: Federation, status: int, body: bytes, warning: str | None) -> None:
    a = federation.a
    stub = StubPeer(status, body)
    added = a.request(
        "POST", "/admin/api/peers", json={"name": "stub", "url": stub.url, "token": "stub-token"}
    )
    try:
        response = a.request("GET", f"{FEDERATION}/studies", params={"PatientID": patient("A-SHARED")})
    finally:
        a.request("DELETE", "/admin/api/peers/stub")
        stub.close()

    assert added.status_code == 201, added.text
    assert response.status_code == 200, response.text
    assert found(response) == [("local", federation.uid("A_SHARED"))]
    assert stub.requests[0]["Authorization"] == "Bearer stub-token"
    if warning is None:
        assert "warning" not in response.headers
    else:
        assert warning in response.headers["warning"]


class StreamingPeer:
    """A loopback HTTP server that sends ``chunks`` as the chunked body of every GET.

    ``closed`` is set when the archive closes the connection while chunks remain.
    """

    def __init__(self, chunks: Callable[[], Iterator[bytes]]) -> None:
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
                self.send_response(200)
                self.send_header("Content-Type", "application/dicom+json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    for chunk in chunks():
                        self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                except OSError:
                    stub.closed.set()

            def log_message(self, *arguments: object) -> None:
                pass

        self.closed = threading.Event()
        self.stopping = threading.Event()
        self.server = http.server.ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.url = f"http://{LOOPBACK}:{self.server.server_address[1]}/dicom-web"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


def _oversized_result() -> Iterator[bytes]:
    """Yield one study whose StudyDescription makes the body 40 MiB, past the archive's 32 MiB bound."""
    yield b'[{"0020000D": {"vr": "UI", "Value": ["1.2.3.999"]}, "00081030": {"vr": "LO", "Value": ["'
    for _ in range(40):
        yield b"x" * (1024 * 1024)
    yield b'"]}}]'


def _federated_search_with(federation: Federation, name: str, peer: StreamingPeer) -> httpx.Response:
    a = federation.a
    added = a.request(
        "POST", "/admin/api/peers", json={"name": name, "url": peer.url, "token": "unused", "timeout": 1}
    )
    assert added.status_code == 201, added.text
    try:
        return a.request(
            "GET", f"{FEDERATION}/studies", params={"PatientID": patient("A-SHARED")}, timeout=60
        )
    finally:
        a.request("DELETE", f"/admin/api/peers/{name}")


def test_oversized_peer_response_dropped(federation: Federation) -> None:
    peer = StreamingPeer(_oversized_result)
    try:
        response = _federated_search_with(federation, "oversized", peer)
    finally:
        peer.close()

    assert response.status_code == 200, response.text
    assert found(response) == [("local", federation.uid("A_SHARED"))]
    assert "peer oversized responded with more than 32 MiB to a search" in response.headers["warning"]


def test_dribbling_peer_disconnected(federation: Federation) -> None:
    peer = StreamingPeer(lambda: _dribble(peer))
    try:
        response = _federated_search_with(federation, "dribble", peer)
        # Each byte comes within the peer's 1 s read timeout, so only the search's deadline ends
        # the read. The bound of this wait is for a broken archive; a working one closes at once.
        closed = peer.closed.wait(timeout=30)
    finally:
        peer.close()

    assert response.status_code == 200, response.text
    assert "peer dribble did not respond within 1 s" in response.headers["warning"]
    assert closed


def _dribble(peer: StreamingPeer) -> Iterator[bytes]:
    yield b"["
    while not peer.stopping.wait(0.2):
        yield b" "


@pytest.mark.parametrize(
    ("content_type", "tail", "expected", "message"),
    [
        ("text/html", "/metadata", 502, "responded to a metadata request with 'text/html'"),
        ("text/html", "", 502, "responded with a web page (text/html) instead of DICOM data"),
        ("application/octet-stream", "/metadata", 502, "with 'application/octet-stream', not"),
        ("text/html", "/rendered", 200, None),
    ],
)
def test_relay_checks_media_type(
    federation: Federation, content_type: str, tail: str, expected: int, message: str | None
) -> None:
    a = federation.a
    stub = StubPeer(200, b"<html><script>document.title='peer'</script>Sign in</html>", content_type)
    added = a.request("POST", "/admin/api/peers", json={"name": "portal", "url": stub.url, "token": "t"})
    try:
        response = a.request("GET", f"{FEDERATION}/peers/portal/studies/{federation.uid('B_SHARED')}{tail}")
    finally:
        a.request("DELETE", "/admin/api/peers/portal")
        stub.close()

    assert added.status_code == 201, added.text
    assert response.status_code == expected, response.text
    if message is None:
        assert response.headers["content-security-policy"] == "sandbox"
        assert response.headers["x-content-type-options"] == "nosniff"
    else:
        assert message in response.json()["message"]
        assert response.json()["message"].startswith("peer portal ")


def test_relayed_metadata_sandboxed(federation: Federation) -> None:
    a = federation.a
    response = a.request("GET", f"{FEDERATION}/peers/b/studies/{federation.uid('B_SHARED')}/metadata")

    assert response.status_code == 200, response.text
    assert response.headers["content-security-policy"] == "sandbox"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_peer_api_hides_secret(federation: Federation) -> None:
    a = federation.a
    token = "dwt_000000000000_never-shown-again"
    added = a.request(
        "POST",
        "/admin/api/peers",
        json={"name": "hidden", "url": "https://pacs.invalid/dicom-web", "token": token},
    )
    try:
        listed = a.request("GET", "/admin/api/peers")
        shown = a.request("GET", "/admin/api/peers/hidden")
        cli = a.archive.run(["peer", "list"])
    finally:
        removed = a.request("DELETE", "/admin/api/peers/hidden")

    assert added.status_code == 201
    for text in (added.text, listed.text, shown.text, cli.stdout, a.server.log()):
        assert token not in text
    assert shown.json()["authentication"] == "bearer"
    assert "hidden" in cli.stdout
    assert removed.status_code == 200
    assert a.request("GET", "/admin/api/peers/hidden").status_code == 404
    changes = [entry for entry in a.audit("security-alert") if entry["peer"] == "hidden"]
    assert [entry["action"] for entry in changes] == ["peer.add", "peer.remove"]
    assert token not in json.dumps(changes)


def test_peer_test_reports(federation: Federation) -> None:
    a = federation.a

    through_api = a.request("POST", "/admin/api/peers/b/test")
    through_cli = a.archive.run(["peer", "test", "b"])

    assert through_api.status_code == 200
    assert through_api.json()["ok"] is True
    assert through_api.json()["error"] is None
    assert through_cli.returncode == 0, through_cli.stderr
    assert "Peer 'b' completed a study search in" in through_cli.stdout


def test_peer_test_reports_failure(federation: Federation) -> None:
    a = federation.a
    added = a.archive.run(
        ["peer", "add", "gone", "--url", f"http://{LOOPBACK}:{refused_port()}/dicom-web", "--token", "x"]
    )
    try:
        tested = a.archive.run(["peer", "test", "gone"])
    finally:
        removed = a.archive.run(["peer", "remove", "gone"])

    assert added.returncode == 0, added.stderr
    assert tested.returncode == 1
    assert "refused the connection" in tested.stdout
    assert removed.returncode == 0, removed.stderr


def _multipart_body(response: httpx.Response) -> bytes:
    """Return the first part's content of a multipart/related response."""
    boundary = response.headers["content-type"].split("boundary=")[1].split(";")[0].strip('"')
    first = response.content.split(f"--{boundary}".encode())[1]
    return first.split(b"\r\n\r\n", 1)[1].removesuffix(b"\r\n")


def test_relayed_study_is_dicom(federation: Federation, tmp_path: Path) -> None:
    a = federation.a
    uid = federation.uid("B_SHARED")

    response = a.request(
        "GET", f"{FEDERATION}/peers/b/studies/{uid}", headers={**a.server.headers, "Accept": AS_STORED}
    )
    (tmp_path / "relayed.dcm").write_bytes(_multipart_body(response))

    assert pydicom.dcmread(tmp_path / "relayed.dcm").StudyInstanceUID == uid
