"""The consent filter on a live server, as a table of given / when / then cases.

One world is built per backend on the session's server: organisations (two external, one
affiliated), tokens, patients with studies made from the shared test files (CT_small and
MR_small under new UIDs), and authorizations of every kind. Each case states what is given,
what a requester does and what must follow; its check runs the request and asserts it. Cases
that change state (a revocation, a quarantine decision, emergency access) use patients of their
own, so the cases are independent of their order.

A second server of the same backend trusts a JWKS served from 127.0.0.1 by the test, for the
OAuth 2.0 / OIDC cases.
"""

from __future__ import annotations

import base64
import datetime
import http.server
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from tests.identity import AdminApi, bearer, store
from tests.services import Backend, ServerProcess, start_server
from tests.testdata import read, synthetic_ct, to_bytes

RUN = uuid.uuid4().hex[:8]
TIMEOUT = 120.0
MULTIPART_AS_STORED = 'multipart/related; type="application/dicom"; transfer-syntax=*'
NO_STORE = "no-store, private"
JWT_AUDIENCE = "https://archive.test/dicom-web"
JWT_KEY_ID = "test-key-1"


def patient(key: str) -> str:
    return f"{key}-{RUN}"


@dataclass(frozen=True)
class StudyRef:
    """The UIDs of a study with one series and one instance the cases name in paths."""

    study: str
    series: str
    instance: str


@dataclass
class World:
    """Everything the cases refer to by name: requesters, studies, authorizations, servers."""

    server: ServerProcess
    admin: AdminApi
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)
    studies: dict[str, StudyRef] = field(default_factory=dict)
    datasets: dict[str, Dataset] = field(default_factory=dict)
    organisations: dict[str, str] = field(default_factory=dict)
    authorizations: dict[str, str] = field(default_factory=dict)
    oidc: OidcWorld | None = None

    def resolve(self, template: str) -> str:
        def replace(match: re.Match[str]) -> str:
            kind, label = match.groups()
            if kind == "patient":
                return patient(label)
            return str(getattr(self.studies[label], kind))

        return re.sub(r"\{(study|series|instance|patient):([A-Z0-9_]+)\}", replace, template)

    def request(
        self,
        who: str,
        path: str,
        params: dict[str, str] | None = None,
        *,
        method: str = "GET",
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        server: ServerProcess | None = None,
    ) -> httpx.Response:
        target = server or self.server
        credentials = {} if who == "anonymous" else self.tokens[who]
        resolved = {name: self.resolve(value) for name, value in (params or {}).items()}
        return httpx.request(
            method,
            target.url + self.resolve(path),
            params=resolved,
            headers={**credentials, **(headers or {})},
            content=content,
            timeout=TIMEOUT,
        )

    def search(self, who: str, path: str, params: dict[str, str] | None = None, **options: Any) -> list[Any]:
        response = self.request(who, path, params, **options)
        assert response.status_code == 200, response.text
        results: list[Any] = response.json()
        return results


@dataclass
class OidcWorld:
    """A server that trusts JWTs signed by ``key``, whose JWKS the test serves on loopback."""

    server: ServerProcess
    issuer: str
    key: rsa.RSAPrivateKey
    organisation: str

    def token(self, *, key: rsa.RSAPrivateKey | None = None, **claims: Any) -> str:
        now = int(time.time())
        body: dict[str, Any] = {
            "iss": self.issuer,
            "aud": JWT_AUDIENCE,
            "sub": "dr-jones",
            "iat": now,
            "exp": now + 300,
            "org": self.organisation,
            "scope": "read",
        }
        body.update(claims)
        body = {name: value for name, value in body.items() if value is not None}
        return jwt.encode(body, key or self.key, algorithm="RS256", headers={"kid": JWT_KEY_ID})

    def unsigned_token(self) -> str:
        def part(data: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

        now = int(time.time())
        claims = {"iss": self.issuer, "aud": JWT_AUDIENCE, "sub": "mallory", "exp": now + 300}
        claims |= {"org": self.organisation, "scope": "read"}
        return f"{part({'alg': 'none', 'typ': 'JWT', 'kid': JWT_KEY_ID})}.{part(claims)}."


# Building the world


def ct(label: str, key: str, study_date: str, **options: Any) -> Dataset:
    dataset = synthetic_ct(
        patient(key), patient_name=f"Consent{RUN}^{label}", study_date=study_date, **options
    )
    return dataset


def mr(label: str, key: str, study_instance_uid: str, study_date: str) -> Dataset:
    """MR_small.dcm of the shared test files, given new UIDs and the patient of ``key``."""
    dataset = read("modalities/mr/MR_small.dcm")
    dataset.PatientID = patient(key)
    dataset.PatientName = f"Consent{RUN}^{label}"
    dataset.StudyInstanceUID = study_instance_uid
    dataset.SeriesInstanceUID = generate_uid()
    dataset.SOPInstanceUID = generate_uid()
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.StudyDate = study_date
    return dataset


def _store(world: World, label: str, dataset: Dataset) -> None:
    response = store(world.server, dataset)
    assert response.status_code == 200, response.text
    world.datasets[label] = dataset
    world.studies[label] = StudyRef(
        dataset.StudyInstanceUID, dataset.SeriesInstanceUID, dataset.SOPInstanceUID
    )


def _iso(instant: datetime.datetime) -> str:
    return instant.isoformat()


def _build(world: World) -> None:
    admin = world.admin
    names = {
        "mercy": admin.add_organisation(f"Mercy {RUN}", affiliated=False),
        "lakeside": admin.add_organisation(f"Lakeside {RUN}", affiliated=False),
        "radiology": admin.add_organisation(f"Radiology {RUN}", affiliated=True),
        "gone": admin.add_organisation(f"Gone {RUN}", affiliated=False),
    }
    world.organisations = names
    mercy, lakeside = names["mercy"], names["lakeside"]
    tokens = world.tokens
    tokens["mercy"] = admin.token_headers(mercy, "read")
    tokens["mercy_store"] = admin.token_headers(mercy, "read", "store")
    tokens["mercy_store_only"] = admin.token_headers(mercy, "store")
    tokens["mercy_emergency"] = admin.token_headers(mercy, "read", "emergency")
    tokens["lakeside"] = admin.token_headers(lakeside, "read")
    tokens["affiliated"] = admin.token_headers(names["radiology"], "read", "store")
    tokens["deleted_org"] = admin.token_headers(names["gone"], "read")
    admin.delete_organisation(names["gone"])
    revoked = admin.create_token(mercy, "read")
    admin.revoke_token(revoked["id"])
    tokens["revoked"] = bearer(revoked["token"])
    expiring = admin.create_token(mercy, "read", expires_at=_iso(_now() + datetime.timedelta(seconds=1)))
    tokens["expired"] = bearer(expiring["token"])
    tokens["unknown"] = bearer(f"dwt_{uuid.uuid4().hex[:12]}_{uuid.uuid4().hex}")

    all_first = ct("ALL1", "ALL", "20240620", modality="CT")
    _store(world, "ALL1", all_first)
    _store(world, "ALL1_MR", mr("ALL1", "ALL", all_first.StudyInstanceUID, "20240620"))
    _store(world, "ALL2", ct("ALL2", "ALL", "20240110"))
    _store(world, "ISSUER1", ct("ISSUER1", "ALL", "20240301", issuer_of_patient_id=f"OTHER-{RUN}"))
    hidden = ct("HIDDEN", "HIDDEN", "20240505")
    _store(world, "HIDDEN", hidden)
    _store(world, "HIDDEN_MR", mr("HIDDEN_MR", "HIDDEN", generate_uid(), "20240506"))
    _store(world, "LIST1", ct("LIST1", "LIST", "20240201"))
    _store(world, "LIST2", ct("LIST2", "LIST", "20240202"))
    for label, day in (("RANGE1", "20230101"), ("RANGE2", "20230615"), ("RANGE3", "20231231")):
        _store(world, label, ct(label, "RANGE", day))
    _store(world, "ANCIENT1", ct("ANCIENT1", "ANCIENT", "20240301"))
    for key in ("EXPIRED", "REVOKED", "FUTURE", "EMERG", "NEXT"):
        _store(world, f"{key}1", ct(f"{key}1", key, "20240301"))
    for number in range(1, 7):
        _store(world, f"PAGE{number}", ct(f"PAGE{number}", "PAGE", f"2022010{7 - number}"))
    world.studies["ABSENT"] = StudyRef(generate_uid(), generate_uid(), generate_uid())

    grants = world.authorizations
    grants["ALL"] = admin.grant(patient_id=patient("ALL"), organisations=[mercy])["id"]
    grants["LIST"] = admin.grant(
        patient_id=patient("LIST"),
        organisations=[lakeside],
        study_instance_uids=[world.studies["LIST1"].study],
    )["id"]
    grants["RANGE"] = admin.grant(
        patient_id=patient("RANGE"),
        any_external=True,
        study_date_from="2023-06-01",
        study_date_to="2023-12-31",
    )["id"]
    grants["ANCIENT"] = admin.grant(
        patient_id=patient("ANCIENT"),
        any_external=True,
        study_date_from="0001-01-01",
        study_date_to="0999-12-31",
    )["id"]
    now = _now()
    grants["EXPIRED"] = admin.grant(
        patient_id=patient("EXPIRED"),
        organisations=[mercy],
        starts_at=_iso(now - datetime.timedelta(days=10)),
        ends_at=_iso(now - datetime.timedelta(seconds=1)),
    )["id"]
    grants["REVOKED"] = admin.grant(patient_id=patient("REVOKED"), organisations=[mercy])["id"]
    admin.revoke(grants["REVOKED"])
    grants["FUTURE"] = admin.grant(
        patient_id=patient("FUTURE"), organisations=[mercy], starts_at=_iso(now + datetime.timedelta(days=1))
    )["id"]
    grants["PAGE"] = admin.grant(
        patient_id=patient("PAGE"),
        organisations=[mercy],
        study_instance_uids=[world.studies[label].study for label in ("PAGE1", "PAGE3", "PAGE5")],
    )["id"]
    grants["LATE"] = admin.grant(patient_id=patient("LATE"), organisations=[mercy])["id"]
    _store(world, "LATE1", ct("LATE1", "LATE", "20300115"))

    while _now() < datetime.datetime.fromisoformat(expiring["expires_at"]):
        time.sleep(0.1)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class JwksHandler(http.server.BaseHTTPRequestHandler):
    """Serves the test issuer's JWKS at any path."""

    document = b"{}"

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.document)))
        self.end_headers()
        self.wfile.write(self.document)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="module")
def jwks_server() -> Iterator[tuple[str, rsa.RSAPrivateKey]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(RSAAlgorithm.to_jwk(key.public_key()))
    handler = type(
        "Handler",
        (JwksHandler,),
        {"document": json.dumps({"keys": [{**public, "kid": JWT_KEY_ID}]}).encode()},
    )
    service = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=service.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{service.server_address[1]}/jwks.json", key
    service.shutdown()
    service.server_close()


@pytest.fixture(scope="module")
def world(
    server: ServerProcess,
    backend: Backend,
    jwks_server: tuple[str, rsa.RSAPrivateKey],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[World]:
    admin = AdminApi(server)
    built = World(server, admin)
    _build(built)
    jwks_url, key = jwks_server
    issuer = f"https://idp.test/{RUN}"
    oidc_server = start_server(
        backend,
        tmp_path_factory.mktemp(f"oidc-{backend.name}"),
        {
            "DICOMWEB_OIDC_ISSUER": issuer,
            "DICOMWEB_OIDC_AUDIENCE": JWT_AUDIENCE,
            "DICOMWEB_OIDC_JWKS_URL": jwks_url,
        },
    )
    try:
        built.oidc = _build_oidc(oidc_server, issuer, key)
        yield built
    finally:
        oidc_server.stop()
        admin.close()


def _build_oidc(server: ServerProcess, issuer: str, key: rsa.RSAPrivateKey) -> OidcWorld:
    admin = AdminApi(server)
    try:
        clinic = admin.add_organisation(f"JWT Clinic {uuid.uuid4().hex[:8]}", affiliated=False)
        for label in ("JWT1", "JWT2"):
            response = store(server, ct(label, "JWT", "20240401"))
            assert response.status_code == 200, response.text
        studies = admin.http.get("/dicom-web/studies", params={"PatientID": patient("JWT")}).json()
        first = sorted(item["0020000D"]["Value"][0] for item in studies)[0]
        admin.grant(patient_id=patient("JWT"), organisations=[clinic], study_instance_uids=[first])
    finally:
        admin.close()
    return OidcWorld(server, issuer, key, clinic)


# The checks the table uses


Check = Callable[[World], None]


def study_uids(results: list[Any]) -> list[str]:
    return [item["0020000D"]["Value"][0] for item in results]


def finds(who: str, path: str, params: dict[str, str], labels: set[str]) -> Check:
    """The search returns 200 with exactly the studies of ``labels``."""

    def check(world: World) -> None:
        found = world.search(who, path, params)
        assert sorted(study_uids(found)) == sorted(world.studies[label].study for label in labels)

    return check


def finds_nothing(who: str, path: str, params: dict[str, str] | None = None) -> Check:
    def check(world: World) -> None:
        response = world.request(who, path, params)
        assert response.status_code == 200, response.text
        assert response.json() == []

    return check


def status(who: str, path: str, expected: int, **options: Any) -> Check:
    def check(world: World) -> None:
        response = world.request(who, path, **options)
        assert response.status_code == expected, response.text

    return check


def answers(
    who: str, path: str, params: dict[str, str] | None = None, headers: dict[str, str] | None = None
) -> Check:
    """An external requester's retrieval of a visible study returns 200, marked not to be cached."""

    def check(world: World) -> None:
        response = world.request(who, path, params, headers=headers)
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == NO_STORE
        assert response.content

    return check


def hidden_like_absent(
    who: str,
    hidden: str,
    absent: str,
    params: dict[str, str] | None = None,
    absent_params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    expected: int = 404,
) -> Check:
    """A request naming a hidden study gets exactly the response of one naming UIDs that do not exist."""

    def check(world: World) -> None:
        for_hidden = world.request(who, hidden, params, headers=headers)
        for_absent = world.request(who, absent, absent_params or params, headers=headers)
        assert for_hidden.status_code == expected, for_hidden.text
        assert for_absent.status_code == expected, for_absent.text
        assert for_hidden.content == for_absent.content
        assert _headers(for_hidden) == _headers(for_absent)
        assert for_hidden.headers["cache-control"] == NO_STORE

    return check


def _headers(response: httpx.Response) -> list[tuple[str, str]]:
    return sorted((name, value) for name, value in response.headers.items() if name != "date")


def unauthorized(who: str, error: str | None) -> Check:
    """The request is a 401 with a Bearer challenge, naming invalid_token when a token was sent."""

    def check(world: World) -> None:
        response = world.request(who, "/dicom-web/studies", {"PatientID": "{patient:ALL}"})
        assert response.status_code == 401, response.text
        challenge = response.headers["www-authenticate"]
        assert challenge.startswith('Bearer realm="dicomweb"')
        if error is None:
            assert "error=" not in challenge
        else:
            assert f'error="{error}"' in challenge

    return check


def jwt_status(make_token: Callable[[OidcWorld], str], expected: int) -> Check:
    def check(world: World) -> None:
        assert world.oidc is not None
        token = make_token(world.oidc)
        response = httpx.get(
            f"{world.oidc.server.dicomweb}/studies",
            params={"PatientID": patient("JWT")},
            headers=bearer(token),
            timeout=TIMEOUT,
        )
        assert response.status_code == expected, response.text
        if expected == 401:
            assert 'error="invalid_token"' in response.headers["www-authenticate"]

    return check


def wado_uri(label: str, series: str | None = None, instance: str | None = None) -> dict[str, str]:
    return {
        "requestType": "WADO",
        "studyUID": f"{{study:{label}}}",
        "seriesUID": f"{{series:{series or label}}}",
        "objectUID": f"{{instance:{instance or label}}}",
        "contentType": "application/dicom",
    }


# Checks that need more than one request


def check_wildcards_find_only_visible(world: World) -> None:
    visible = {"ALL1", "ALL2", "RANGE2", "RANGE3", "PAGE1", "PAGE3", "PAGE5", "LATE1"}
    expected = sorted(world.studies[label].study for label in visible)
    by_id = world.search("mercy", "/dicom-web/studies", {"PatientID": f"*-{RUN}"})
    by_name = world.search("mercy", "/dicom-web/studies", {"PatientName": f"Consent{RUN}*"})
    assert sorted(study_uids(by_id)) == expected
    assert sorted(study_uids(by_name)) == expected


def check_top_level_series_and_instances(world: World) -> None:
    visible = {"ALL1", "ALL2", "RANGE2", "RANGE3", "PAGE1", "PAGE3", "PAGE5", "LATE1"}
    series = world.search("mercy", "/dicom-web/series", {"PatientID": f"*-{RUN}"})
    instances = world.search("mercy", "/dicom-web/instances", {"PatientName": f"Consent{RUN}*"})
    expected_series = sorted(
        [world.studies[label].series for label in visible] + [world.studies["ALL1_MR"].series]
    )
    assert sorted(item["0020000E"]["Value"][0] for item in series) == expected_series
    expected_instances = sorted(
        [world.studies[label].instance for label in visible] + [world.studies["ALL1_MR"].instance]
    )
    assert sorted(item["00080018"]["Value"][0] for item in instances) == expected_instances


def check_counts_and_modalities(world: World) -> None:
    (found,) = world.search(
        "mercy",
        "/dicom-web/studies",
        {"StudyInstanceUID": "{study:ALL1}", "includefield": "ModalitiesInStudy"},
    )
    assert found["00080061"]["Value"] == ["CT", "MR"]
    assert found["00201206"]["Value"] == [2]
    assert found["00201208"]["Value"] == [2]


def check_paging(world: World) -> None:
    pages = []
    warnings = []
    for offset in (0, 2, 4):
        response = world.request(
            "mercy",
            "/dicom-web/studies",
            {"PatientID": "{patient:PAGE}", "limit": "2", "offset": str(offset)},
        )
        assert response.status_code == 200, response.text
        pages.append(study_uids(response.json()))
        warnings.append("warning" in response.headers)
    assert pages == [
        [world.studies["PAGE1"].study, world.studies["PAGE3"].study],
        [world.studies["PAGE5"].study],
        [],
    ]
    assert warnings == [True, False, False]


def check_revocation_next_request(world: World) -> None:
    authorization = world.admin.grant(
        patient_id=patient("NEXT"), organisations=[world.organisations["mercy"]]
    )
    metadata = "/dicom-web/studies/{study:NEXT1}/metadata"
    assert world.request("mercy", metadata).status_code == 200
    world.admin.revoke(authorization["id"])
    assert world.request("mercy", metadata).status_code == 404
    assert world.search("mercy", "/dicom-web/studies", {"PatientID": "{patient:NEXT}"}) == []


def check_late_study_extends_end(world: World) -> None:
    assert study_uids(world.search("mercy", "/dicom-web/studies", {"PatientID": "{patient:LATE}"})) == [
        world.studies["LATE1"].study
    ]
    recorded = world.admin.authorization(world.authorizations["LATE"])
    assert recorded["ends_at"] == "2031-01-16T00:00:00.000000Z"
    assert recorded["end_chosen_by_patient"] is False


def check_patient_end_kept(world: World) -> None:
    recorded = world.admin.grant(
        patient_id=patient("ALL"),
        organisations=[world.organisations["lakeside"]],
        starts_at="2024-07-01",
        ends_at="2025-01-31",
    )
    assert recorded["ends_at"] == "2025-02-01T00:00:00.000000Z"
    assert recorded["end_chosen_by_patient"] is True
    assert recorded["meets_twelve_months"] is False
    assert recorded["state"] == "ended"
    assert world.search("lakeside", "/dicom-web/studies", {"PatientID": "{patient:ALL}"}) == []


def check_store_without_scope(world: World) -> None:
    for content_type in ('multipart/related; type="application/dicom"; boundary=x', None):
        headers = {"Content-Type": content_type} if content_type else {}
        response = world.request(
            "lakeside", "/dicom-web/studies", method="POST", headers=headers, content=b"not DICOM" * 100_000
        )
        assert response.status_code == 403, response.text
        assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


def _store_as(world: World, who: str, dataset: Dataset) -> httpx.Response:
    return world.request(
        who,
        "/dicom-web/studies",
        method="POST",
        headers={"Content-Type": "application/dicom", "Accept": "application/dicom+json"},
        content=to_bytes(dataset),
    )


def _shape(document: Any) -> Any:
    """The keys and value representations of a DICOM JSON answer, without its values."""
    if isinstance(document, dict):
        return {key: _shape(value) for key, value in document.items() if key != "Value"} | (
            {"Value": [_shape(item) for item in document["Value"]]}
            if isinstance(document.get("Value"), list) and document.get("vr") == "SQ"
            else {}
        )
    return None


def check_external_store_held(world: World) -> None:
    world.admin.grant(patient_id=patient("HELD"), organisations=[world.organisations["mercy"]])
    dataset = ct("HELD1", "HELD", "20240701")
    response = _store_as(world, "mercy_store", dataset)
    assert response.status_code == 200, response.text
    (referenced,) = response.json()["00081199"]["Value"]
    assert referenced["00081155"]["Value"] == [dataset.SOPInstanceUID]

    assert world.search("mercy_store", "/dicom-web/studies", {"PatientID": "{patient:HELD}"}) == []
    assert world.search("affiliated", "/dicom-web/studies", {"PatientID": "{patient:HELD}"}) == []
    metadata = f"/dicom-web/studies/{dataset.StudyInstanceUID}/metadata"
    assert world.request("affiliated", metadata).status_code == 404
    (held,) = world.admin.quarantine(study_instance_uid=dataset.StudyInstanceUID)
    assert held["status"] == "held"
    assert held["organisation"] == world.organisations["mercy"]
    assert held["sop_instance_uid"] == dataset.SOPInstanceUID

    accepted = world.admin.http.post(f"/admin/api/quarantine/{held['id']}/accept", json={"note": "checked"})
    assert accepted.status_code == 200, accepted.text
    assert study_uids(world.search("affiliated", "/dicom-web/studies", {"PatientID": "{patient:HELD}"})) == [
        dataset.StudyInstanceUID
    ]
    assert study_uids(world.search("mercy", "/dicom-web/studies", {"PatientID": "{patient:HELD}"})) == [
        dataset.StudyInstanceUID
    ]


def check_external_store_collision(world: World) -> None:
    fresh = _store_as(world, "mercy_store", ct("FRESH1", "FRESH", "20240702"))
    original = world.datasets["HIDDEN"]
    forged = read("modalities/ct/CT_small.dcm")
    forged.PatientID = patient("FORGED")
    forged.PatientName = "Forged^Patient"
    forged.StudyInstanceUID = original.StudyInstanceUID
    forged.SeriesInstanceUID = original.SeriesInstanceUID
    forged.SOPInstanceUID = original.SOPInstanceUID
    forged.file_meta.MediaStorageSOPInstanceUID = original.SOPInstanceUID
    collision = _store_as(world, "mercy_store", forged)

    assert collision.status_code == fresh.status_code == 200
    assert _shape(collision.json()) == _shape(fresh.json())
    assert collision.headers.keys() == fresh.headers.keys()

    stored = world.request(
        "affiliated",
        "/dicom-web/studies/{study:HIDDEN}/series/{series:HIDDEN}/instances/{instance:HIDDEN}/metadata",
    )
    assert stored.json()[0]["00100020"]["Value"] == [patient("HIDDEN")]
    (held,) = world.admin.quarantine(study_instance_uid=original.StudyInstanceUID)
    refused = world.admin.http.post(f"/admin/api/quarantine/{held['id']}/accept")
    assert refused.status_code == 409, refused.text
    assert "stays held" in refused.json()["message"]
    assert world.admin.quarantine(study_instance_uid=original.StudyInstanceUID)[0]["status"] == "held"


def check_external_store_rejected(world: World) -> None:
    dataset = ct("REJECT1", "REJECT", "20240703")
    assert _store_as(world, "mercy_store", dataset).status_code == 200
    (held,) = world.admin.quarantine(study_instance_uid=dataset.StudyInstanceUID)
    rejected = world.admin.http.post(
        f"/admin/api/quarantine/{held['id']}/reject", json={"note": "wrong patient"}
    )
    assert rejected.status_code == 200, rejected.text
    assert rejected.json()["status"] == "rejected"
    assert world.search("affiliated", "/dicom-web/studies", {"PatientID": "{patient:REJECT}"}) == []
    assert world.admin.quarantine(study_instance_uid=dataset.StudyInstanceUID) == []


def check_study_of_other_patient(world: World) -> None:
    intruder = ct("INTRUDER", "INTRUDER", "20240620", study_instance_uid=world.studies["ALL2"].study)
    response = _store_as(world, "affiliated", intruder)
    assert response.status_code == 409, response.text
    (failed,) = response.json()["00081198"]["Value"]
    assert failed["00081197"]["Value"] == [0xA900]
    assert "another patient" in failed["00000902"]["Value"][0]
    assert world.request("affiliated", f"/dicom-web/studies/{world.studies['ALL2'].study}/metadata").json()[
        0
    ]["00100020"]["Value"] == [patient("ALL")]


def check_emergency_access(world: World) -> None:
    query = {"PatientID": "{patient:EMERG}"}
    assert world.search("mercy_emergency", "/dicom-web/studies", query) == []
    opened = world.request(
        "mercy_emergency",
        "/admin/api/emergency-access",
        method="POST",
        headers={"Content-Type": "application/json"},
        content=json.dumps(
            {"patient_id": patient("EMERG"), "reason": "unconscious after a fall; prior CT needed"}
        ).encode(),
    )
    assert opened.status_code == 201, opened.text
    access = opened.json()
    assert study_uids(world.search("mercy_emergency", "/dicom-web/studies", query)) == [
        world.studies["EMERG1"].study
    ]
    assert world.request("mercy_emergency", "/dicom-web/studies/{study:EMERG1}/metadata").status_code == 200
    assert world.search("mercy", "/dicom-web/studies", query) == []

    alerts = [line for line in world.server.log().splitlines() if access["id"] in line]
    assert any("Security alert: emergency access" in line and "opened" in line for line in alerts)
    assert sum("used by" in line for line in alerts) >= 2
    assert not any(patient("EMERG") in line for line in world.server.log().splitlines())
    listed = world.admin.http.get("/admin/api/emergency-access", params={"open": "true"}).json()
    assert access["id"] in [item["id"] for item in listed]


def check_emergency_needs_reason_and_scope(world: World) -> None:
    body = {"patient_id": patient("EMERG")}
    missing = world.request(
        "mercy_emergency",
        "/admin/api/emergency-access",
        method="POST",
        headers={"Content-Type": "application/json"},
        content=json.dumps(body).encode(),
    )
    assert missing.status_code == 400, missing.text
    assert "reason" in missing.json()["message"]
    without_scope = world.request(
        "mercy",
        "/admin/api/emergency-access",
        method="POST",
        headers={"Content-Type": "application/json"},
        content=json.dumps({**body, "reason": "x"}).encode(),
    )
    assert without_scope.status_code == 403, without_scope.text


def check_jwt_sees_its_authorization(world: World) -> None:
    assert world.oidc is not None
    response = httpx.get(
        f"{world.oidc.server.dicomweb}/studies",
        params={"PatientID": patient("JWT")},
        headers=bearer(world.oidc.token()),
        timeout=TIMEOUT,
    )
    assert response.status_code == 200, response.text
    assert len(response.json()) == 1
    assert response.headers["cache-control"] == NO_STORE


@dataclass(frozen=True)
class Case:
    """One row of the table: what is given, what is done, what must follow, and the check."""

    name: str
    given: str
    when: str
    then: str
    check: Check


ALL_STUDIES = "patient ALL authorized all studies for Mercy"
HIDDEN = "patient HIDDEN authorized nothing"
ABSENT = "UIDs that are not in the archive"

CASES = [
    # Search (QIDO-RS)
    Case(
        "qido-authorized-patient",
        given=ALL_STUDIES,
        when="Mercy searches PatientID",
        then="both studies are found",
        check=finds("mercy", "/dicom-web/studies", {"PatientID": "{patient:ALL}"}, {"ALL1", "ALL2"}),
    ),
    Case(
        "qido-unauthorized-patient",
        given=HIDDEN,
        when="Mercy searches PatientID",
        then="an empty list, as for no match",
        check=finds_nothing("mercy", "/dicom-web/studies", {"PatientID": "{patient:HIDDEN}"}),
    ),
    Case(
        "qido-wildcards",
        given="studies of eleven patients, eight visible to Mercy",
        when="Mercy searches PatientID and PatientName with wildcards",
        then="exactly the eight visible studies",
        check=check_wildcards_find_only_visible,
    ),
    Case(
        "qido-top-level-series-instances",
        given="the same studies",
        when="Mercy searches /series and /instances",
        then="only series and instances of visible studies",
        check=check_top_level_series_and_instances,
    ),
    Case(
        "qido-hidden-study-series",
        given=HIDDEN,
        when="Mercy searches the series of the hidden study",
        then="an empty list",
        check=finds_nothing("mercy", "/dicom-web/studies/{study:HIDDEN}/series"),
    ),
    Case(
        "qido-hidden-study-instances",
        given=HIDDEN,
        when="Mercy searches the instances of the hidden study",
        then="an empty list",
        check=finds_nothing("mercy", "/dicom-web/studies/{study:HIDDEN}/instances"),
    ),
    Case(
        "qido-hidden-series-instances",
        given=HIDDEN,
        when="Mercy searches the instances of the hidden series",
        then="an empty list",
        check=finds_nothing("mercy", "/dicom-web/studies/{study:HIDDEN}/series/{series:HIDDEN}/instances"),
    ),
    Case(
        "qido-hidden-study-uid",
        given=HIDDEN,
        when="Mercy searches StudyInstanceUID of the hidden study",
        then="an empty list",
        check=finds_nothing("mercy", "/dicom-web/studies", {"StudyInstanceUID": "{study:HIDDEN}"}),
    ),
    Case(
        "qido-modalities-in-study",
        given="a visible CT and MR study, a hidden MR study",
        when="Mercy searches ModalitiesInStudy=MR",
        then="only the visible MR study",
        check=finds(
            "mercy", "/dicom-web/studies", {"ModalitiesInStudy": "MR", "PatientID": f"*-{RUN}"}, {"ALL1"}
        ),
    ),
    Case(
        "qido-counts",
        given="a visible study with a CT and an MR series",
        when="Mercy reads its ModalitiesInStudy and counts",
        then="CT and MR, 2 series, 2 instances",
        check=check_counts_and_modalities,
    ),
    Case(
        "qido-paging",
        given="six studies of a patient, three authorized (newest, third, fifth)",
        when="Mercy pages with limit 2",
        then="pages of 2, 1 and 0 visible studies; a Warning only while more follow",
        check=check_paging,
    ),
    Case(
        "qido-issuer-differs",
        given="a study of the same PatientID under another IssuerOfPatientID",
        when="Mercy searches PatientID",
        then="only the two studies without an issuer",
        check=finds("mercy", "/dicom-web/studies", {"PatientID": "{patient:ALL}"}, {"ALL1", "ALL2"}),
    ),
    # Retrieval of a hidden study: every form answers as for UIDs that do not exist
    Case(
        "wado-study",
        given=HIDDEN + "; " + ABSENT,
        when="Mercy retrieves the study",
        then="the same 404 as for absent UIDs",
        check=hidden_like_absent(
            "mercy",
            "/dicom-web/studies/{study:HIDDEN}",
            "/dicom-web/studies/{study:ABSENT}",
            headers={"Accept": MULTIPART_AS_STORED},
        ),
    ),
    Case(
        "wado-series",
        given=HIDDEN,
        when="Mercy retrieves the series",
        then="the same 404 as for absent UIDs",
        check=hidden_like_absent(
            "mercy",
            "/dicom-web/studies/{study:HIDDEN}/series/{series:HIDDEN}",
            "/dicom-web/studies/{study:ABSENT}/series/{series:ABSENT}",
        ),
    ),
    Case(
        "wado-instance",
        given=HIDDEN,
        when="Mercy retrieves the instance",
        then="the same 404 as for absent UIDs",
        check=hidden_like_absent(
            "mercy",
            "/dicom-web/studies/{study:HIDDEN}/series/{series:HIDDEN}/instances/{instance:HIDDEN}",
            "/dicom-web/studies/{study:ABSENT}/series/{series:ABSENT}/instances/{instance:ABSENT}",
        ),
    ),
    Case(
        "wado-study-metadata",
        given=HIDDEN,
        when="Mercy retrieves the study metadata",
        then="the same 404 as for absent UIDs",
        check=hidden_like_absent(
            "mercy",
            "/dicom-web/studies/{study:HIDDEN}/metadata",
            "/dicom-web/studies/{study:ABSENT}/metadata",
        ),
    ),
    Case(
        "wado-series-metadata",
        given=HIDDEN,
        when="Mercy retrieves the series metadata",
        then="the same 404",
        check=hidden_like_absent(
            "mercy",
            "/dicom-web/studies/{study:HIDDEN}/series/{series:HIDDEN}/metadata",
            "/dicom-web/studies/{study:ABSENT}/series/{series:ABSENT}/metadata",
        ),
    ),
    Case(
        "wado-instance-metadata",
        given=HIDDEN,
        when="Mercy retrieves the instance metadata",
        then="the same 404",
        check=hidden_like_absent(
            "mercy",
            "/dicom-web/studies/{study:HIDDEN}/series/{series:HIDDEN}/instances/{instance:HIDDEN}/metadata",
            "/dicom-web/studies/{study:ABSENT}/series/{series:ABSENT}/instances/{instance:ABSENT}/metadata",
        ),
    ),
    Case(
        "wado-frames",
        given=HIDDEN,
        when="Mercy retrieves frame 1",
        then="the same 404",
        check=hidden_like_absent(
            "mercy",
            "/dicom-web/studies/{study:HIDDEN}/series/{series:HIDDEN}/instances/{instance:HIDDEN}/frames/1",
            "/dicom-web/studies/{study:ABSENT}/series/{series:ABSENT}/instances/{instance:ABSENT}/frames/1",
        ),
    ),
    Case(
        "wado-bulkdata",
        given=HIDDEN,
        when="Mercy retrieves the pixel data as bulk data",
        then="the same 404",
        check=hidden_like_absent(
            "mercy",
            "/dicom-web/studies/{study:HIDDEN}/series/{series:HIDDEN}/instances/{instance:HIDDEN}/bulkdata/7FE00010",
            "/dicom-web/studies/{study:ABSENT}/series/{series:ABSENT}/instances/{instance:ABSENT}/bulkdata/7FE00010",
        ),
    ),
    Case(
        "wado-study-rendered",
        given=HIDDEN,
        when="Mercy retrieves the rendered study",
        then="the same 404",
        check=hidden_like_absent(
            "mercy",
            "/dicom-web/studies/{study:HIDDEN}/rendered",
            "/dicom-web/studies/{study:ABSENT}/rendered",
        ),
    ),
    Case(
        "wado-series-rendered",
        given=HIDDEN,
        when="Mercy retrieves the rendered series",
        then="the same 404",
        check=hidden_like_absent(
            "mercy",
            "/dicom-web/studies/{study:HIDDEN}/series/{series:HIDDEN}/rendered",
            "/dicom-web/studies/{study:ABSENT}/series/{series:ABSENT}/rendered",
        ),
    ),
    Case(
        "wado-instance-rendered",
        given=HIDDEN,
        when="Mercy retrieves the rendered instance",
        then="the same 404",
        check=hidden_like_absent(
            "mercy",
            "/dicom-web/studies/{study:HIDDEN}/series/{series:HIDDEN}/instances/{instance:HIDDEN}/rendered",
            "/dicom-web/studies/{study:ABSENT}/series/{series:ABSENT}/instances/{instance:ABSENT}/rendered",
        ),
    ),
    Case(
        "wado-frame-rendered",
        given=HIDDEN,
        when="Mercy retrieves frame 1 rendered",
        then="the same 404",
        check=hidden_like_absent(
            "mercy",
            "/dicom-web/studies/{study:HIDDEN}/series/{series:HIDDEN}/instances/{instance:HIDDEN}/frames/1/rendered",
            "/dicom-web/studies/{study:ABSENT}/series/{series:ABSENT}/instances/{instance:ABSENT}/frames/1/rendered",
        ),
    ),
    Case(
        "wado-study-thumbnail",
        given=HIDDEN,
        when="Mercy retrieves the study thumbnail",
        then="the same 404",
        check=hidden_like_absent(
            "mercy",
            "/dicom-web/studies/{study:HIDDEN}/thumbnail",
            "/dicom-web/studies/{study:ABSENT}/thumbnail",
        ),
    ),
    Case(
        "wado-series-thumbnail",
        given=HIDDEN,
        when="Mercy retrieves the series thumbnail",
        then="the same 404",
        check=hidden_like_absent(
            "mercy",
            "/dicom-web/studies/{study:HIDDEN}/series/{series:HIDDEN}/thumbnail",
            "/dicom-web/studies/{study:ABSENT}/series/{series:ABSENT}/thumbnail",
        ),
    ),
    Case(
        "wado-instance-thumbnail",
        given=HIDDEN,
        when="Mercy retrieves the instance thumbnail",
        then="the same 404",
        check=hidden_like_absent(
            "mercy",
            "/dicom-web/studies/{study:HIDDEN}/series/{series:HIDDEN}/instances/{instance:HIDDEN}/thumbnail",
            "/dicom-web/studies/{study:ABSENT}/series/{series:ABSENT}/instances/{instance:ABSENT}/thumbnail",
        ),
    ),
    Case(
        "wado-frame-thumbnail",
        given=HIDDEN,
        when="Mercy retrieves the thumbnail of frame 1",
        then="the same 404",
        check=hidden_like_absent(
            "mercy",
            "/dicom-web/studies/{study:HIDDEN}/series/{series:HIDDEN}/instances/{instance:HIDDEN}/frames/1/thumbnail",
            "/dicom-web/studies/{study:ABSENT}/series/{series:ABSENT}/instances/{instance:ABSENT}/frames/1/thumbnail",
        ),
    ),
    Case(
        "wado-uri",
        given=HIDDEN,
        when="Mercy retrieves the instance with WADO-URI",
        then="the same 404",
        check=hidden_like_absent("mercy", "/wado", "/wado", wado_uri("HIDDEN"), wado_uri("ABSENT")),
    ),
    Case(
        "wado-series-of-other-study",
        given=ALL_STUDIES + "; " + HIDDEN,
        when="Mercy asks for the hidden series under the visible study",
        then="the same 404 as for an absent series",
        check=hidden_like_absent(
            "mercy",
            "/dicom-web/studies/{study:ALL1}/series/{series:HIDDEN}/metadata",
            "/dicom-web/studies/{study:ALL1}/series/{series:ABSENT}/metadata",
        ),
    ),
    Case(
        "wado-instance-of-other-study",
        given=ALL_STUDIES + "; " + HIDDEN,
        when="Mercy asks for the hidden instance under the visible study and series",
        then="the same 404",
        check=hidden_like_absent(
            "mercy",
            "/dicom-web/studies/{study:ALL1}/series/{series:ALL1}/instances/{instance:HIDDEN}",
            "/dicom-web/studies/{study:ALL1}/series/{series:ALL1}/instances/{instance:ABSENT}",
        ),
    ),
    Case(
        "wado-uri-instance-of-other-study",
        given=ALL_STUDIES + "; " + HIDDEN,
        when="Mercy asks WADO-URI for the hidden instance under the visible study",
        then="the same 404",
        check=hidden_like_absent(
            "mercy", "/wado", "/wado", wado_uri("ALL1", "ALL1", "HIDDEN"), wado_uri("ALL1", "ALL1", "ABSENT")
        ),
    ),
    Case(
        "wado-authorized-metadata",
        given=ALL_STUDIES,
        when="Mercy retrieves the study metadata",
        then="200, marked not to be cached",
        check=answers("mercy", "/dicom-web/studies/{study:ALL1}/metadata"),
    ),
    Case(
        "wado-authorized-study",
        given=ALL_STUDIES,
        when="Mercy retrieves the study as stored",
        then="200",
        check=answers("mercy", "/dicom-web/studies/{study:ALL2}", headers={"Accept": MULTIPART_AS_STORED}),
    ),
    Case(
        "wado-authorized-frame-rendered",
        given=ALL_STUDIES,
        when="Mercy retrieves frame 1 as JPEG",
        then="200",
        check=answers(
            "mercy",
            "/dicom-web/studies/{study:ALL2}/series/{series:ALL2}/instances/{instance:ALL2}/frames/1/rendered",
            headers={"Accept": "image/jpeg"},
        ),
    ),
    # Authorizations in time and scope
    Case(
        "authorization-expired",
        given="patient EXPIRED authorized for Mercy until a second ago",
        when="Mercy searches and retrieves",
        then="nothing is found",
        check=hidden_like_absent(
            "mercy",
            "/dicom-web/studies/{study:EXPIRED1}/metadata",
            "/dicom-web/studies/{study:ABSENT}/metadata",
        ),
    ),
    Case(
        "authorization-expired-search",
        given="the same",
        when="Mercy searches PatientID",
        then="an empty list",
        check=finds_nothing("mercy", "/dicom-web/studies", {"PatientID": "{patient:EXPIRED}"}),
    ),
    Case(
        "authorization-revoked",
        given="patient REVOKED authorized for Mercy, then revoked",
        when="Mercy searches PatientID",
        then="an empty list",
        check=finds_nothing("mercy", "/dicom-web/studies", {"PatientID": "{patient:REVOKED}"}),
    ),
    Case(
        "authorization-not-started",
        given="patient FUTURE authorized for Mercy from tomorrow",
        when="Mercy searches PatientID",
        then="an empty list",
        check=finds_nothing("mercy", "/dicom-web/studies", {"PatientID": "{patient:FUTURE}"}),
    ),
    Case(
        "authorization-date-range",
        given="patient RANGE authorized studies of 2023-06-01..2023-12-31 for any external",
        when="Lakeside searches PatientID",
        then="the studies of 15 June and 31 December, not 1 January",
        check=finds("lakeside", "/dicom-web/studies", {"PatientID": "{patient:RANGE}"}, {"RANGE2", "RANGE3"}),
    ),
    Case(
        "authorization-date-range-before-1000",
        given="patient ANCIENT authorized studies of 0001-01-01..0999-12-31 for any external",
        when="Lakeside searches PatientID for a study of 2024",
        then="an empty list, since 2024 is outside the range",
        check=finds_nothing("lakeside", "/dicom-web/studies", {"PatientID": "{patient:ANCIENT}"}),
    ),
    Case(
        "authorization-listed-study",
        given="patient LIST authorized one listed study for Lakeside",
        when="Lakeside searches PatientID",
        then="only the listed study",
        check=finds("lakeside", "/dicom-web/studies", {"PatientID": "{patient:LIST}"}, {"LIST1"}),
    ),
    Case(
        "two-organisations-mercy",
        given="ALL for Mercy; LIST for Lakeside",
        when="Mercy searches patient LIST",
        then="an empty list",
        check=finds_nothing("mercy", "/dicom-web/studies", {"PatientID": "{patient:LIST}"}),
    ),
    Case(
        "two-organisations-lakeside",
        given="ALL for Mercy; LIST for Lakeside",
        when="Lakeside searches patient ALL",
        then="an empty list",
        check=finds_nothing("lakeside", "/dicom-web/studies", {"PatientID": "{patient:ALL}"}),
    ),
    Case(
        "revocation-next-request",
        given="patient NEXT authorized for Mercy, visible",
        when="the authorization is revoked",
        then="the next search and retrieval find nothing",
        check=check_revocation_next_request,
    ),
    Case(
        "study-after-authorization",
        given="patient LATE authorized all studies before any was stored",
        when="a study dated 2030-01-15 is stored",
        then="Mercy finds it; the end moves to the end of 2031-01-15",
        check=check_late_study_extends_end,
    ),
    Case(
        "patient-chosen-end",
        given="patient ALL authorized Lakeside from 2024-07-01 until 2025-01-31",
        when="the authorization is recorded",
        then="it keeps that end and is marked as not meeting twelve months",
        check=check_patient_end_kept,
    ),
    Case(
        "affiliated-sees-all",
        given=HIDDEN,
        when="an affiliated user searches PatientID",
        then="both hidden studies",
        check=finds(
            "affiliated", "/dicom-web/studies", {"PatientID": "{patient:HIDDEN}"}, {"HIDDEN", "HIDDEN_MR"}
        ),
    ),
    Case(
        "affiliated-marked-private",
        given=HIDDEN,
        when="an affiliated user retrieves metadata",
        then="200 with Cache-Control no-store, private, as for external requesters",
        check=lambda world: _assert_affiliated_not_cached(world),
    ),
    # Identity
    Case(
        "no-token",
        given="any study",
        when="a request without a token",
        then="401 with a Bearer challenge",
        check=unauthorized("anonymous", None),
    ),
    Case(
        "unknown-token",
        given="any study",
        when="a request with a token the archive never issued",
        then="401 invalid_token",
        check=unauthorized("unknown", "invalid_token"),
    ),
    Case(
        "revoked-token",
        given="a revoked token of Mercy",
        when="a request with it",
        then="401 invalid_token",
        check=unauthorized("revoked", "invalid_token"),
    ),
    Case(
        "expired-token",
        given="a token of Mercy that expired a moment ago",
        when="a request with it",
        then="401 invalid_token",
        check=unauthorized("expired", "invalid_token"),
    ),
    Case(
        "deleted-organisation-token",
        given="a token of an organisation since deleted",
        when="a request with it",
        then="401 invalid_token",
        check=unauthorized("deleted_org", "invalid_token"),
    ),
    Case(
        "token-without-read",
        given="a Mercy token with only the store scope",
        when="it searches",
        then="403 insufficient_scope",
        check=status("mercy_store_only", "/dicom-web/studies", 403),
    ),
    Case(
        "external-not-admin",
        given="a Mercy read token",
        when="it lists the tokens of the admin API",
        then="403",
        check=status("mercy", "/admin/api/tokens", 403),
    ),
    Case(
        "jwt-valid",
        given="a JWT Clinic authorized one of two studies",
        when="a valid JWT of the clinic searches",
        then="one study, marked not to be cached",
        check=check_jwt_sees_its_authorization,
    ),
    Case(
        "jwt-wrong-audience",
        given="the same",
        when="a JWT for another audience",
        then="401",
        check=jwt_status(lambda oidc: oidc.token(aud="https://other.test"), 401),
    ),
    Case(
        "jwt-wrong-signature",
        given="the same",
        when="a JWT signed by another key with the issuer's key id",
        then="401",
        check=jwt_status(
            lambda oidc: oidc.token(key=rsa.generate_private_key(public_exponent=65537, key_size=2048)), 401
        ),
    ),
    Case(
        "jwt-alg-none",
        given="the same",
        when="an unsigned JWT (alg none)",
        then="401",
        check=jwt_status(lambda oidc: oidc.unsigned_token(), 401),
    ),
    Case(
        "jwt-expired",
        given="the same",
        when="a JWT that expired ten minutes ago",
        then="401",
        check=jwt_status(lambda oidc: oidc.token(exp=int(time.time()) - 600), 401),
    ),
    Case(
        "jwt-unregistered-organisation",
        given="the same",
        when="a valid JWT naming an unregistered organisation",
        then="401",
        check=jwt_status(lambda oidc: oidc.token(org=f"Unknown {RUN}"), 401),
    ),
    Case(
        "jwt-without-read",
        given="the same",
        when="a valid JWT with only the store scope",
        then="403",
        check=jwt_status(lambda oidc: oidc.token(scope="store"), 403),
    ),
    # Storing from outside
    Case(
        "stow-external-without-store",
        given="a Lakeside token without the store scope",
        when="it posts any body",
        then="403 before the body is read",
        check=check_store_without_scope,
    ),
    Case(
        "stow-external-held",
        given="patient HELD authorized for Mercy",
        when="Mercy stores an instance of HELD",
        then="200 as for any instance; nobody finds it until an admin accepts it; then both do",
        check=check_external_store_held,
    ),
    Case(
        "stow-external-collision",
        given="a stored hidden instance",
        when="Mercy stores other content under its UIDs",
        then="the answer has the shape of a fresh store, the stored instance is unchanged, accepting fails",
        check=check_external_store_collision,
    ),
    Case(
        "stow-external-rejected",
        given="an instance Mercy stored",
        when="an admin rejects it",
        then="it is marked rejected and never found",
        check=check_external_store_rejected,
    ),
    # Federated search and retrieval (/federation/dicom-web)
    Case(
        "federation-authorized-patient",
        given=ALL_STUDIES,
        when="Mercy searches PatientID across the federation",
        then="both studies are found, from this archive",
        check=finds(
            "mercy", "/federation/dicom-web/studies", {"PatientID": "{patient:ALL}"}, {"ALL1", "ALL2"}
        ),
    ),
    Case(
        "federation-unauthorized-patient",
        given=HIDDEN,
        when="Mercy searches PatientID across the federation",
        then="an empty list, as for no match",
        check=finds_nothing("mercy", "/federation/dicom-web/studies", {"PatientID": "{patient:HIDDEN}"}),
    ),
    Case(
        "federation-hidden-study-series",
        given=HIDDEN,
        when="Mercy searches the series of the hidden study across the federation",
        then="an empty list",
        check=finds_nothing("mercy", "/federation/dicom-web/studies/{study:HIDDEN}/series"),
    ),
    Case(
        "federation-hidden-series-instances",
        given=HIDDEN,
        when="Mercy searches the instances of the hidden series across the federation",
        then="an empty list",
        check=finds_nothing(
            "mercy", "/federation/dicom-web/studies/{study:HIDDEN}/series/{series:HIDDEN}/instances"
        ),
    ),
    Case(
        "federation-peer-retrieval",
        given=HIDDEN,
        when="Mercy retrieves the hidden study through a peer path",
        then="the same 403 as for an absent study: external requesters never reach peers",
        check=hidden_like_absent(
            "mercy",
            "/federation/dicom-web/peers/north/studies/{study:HIDDEN}",
            "/federation/dicom-web/peers/north/studies/{study:ABSENT}",
            expected=403,
        ),
    ),
    Case(
        "stow-study-of-other-patient",
        given="study ALL2 of patient ALL",
        when="an affiliated user stores another patient into it",
        then="409 with a reason naming another patient; the study is unchanged",
        check=check_study_of_other_patient,
    ),
    # Emergency access
    Case(
        "emergency-access",
        given="patient EMERG authorized nothing",
        when="a Mercy user with the emergency scope opens access",
        then="the user sees the study, other Mercy tokens do not, and each use raises a security alert",
        check=check_emergency_access,
    ),
    Case(
        "emergency-needs-reason",
        given="the same",
        when="opening without a reason, or without the scope",
        then="400 naming the reason; 403",
        check=check_emergency_needs_reason_and_scope,
    ),
]


def _assert_affiliated_not_cached(world: World) -> None:
    response = world.request("affiliated", "/dicom-web/studies/{study:HIDDEN}/metadata")
    assert response.status_code == 200, response.text
    assert response.headers.get("cache-control") == NO_STORE


def test_case_table_is_large_enough() -> None:
    assert len(CASES) >= 40
    assert len({case.name for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_consent(world: World, case: Case) -> None:
    """Given ``case.given``, when ``case.when``, then ``case.then``."""
    case.check(world)


def test_revocation_reaches_other_replica(world: World, server_factory: Callable[..., ServerProcess]) -> None:
    """Given two replicas on one index, when one revokes, then the other hides the study at once."""
    replica = server_factory(data_dir=world.server.data_dir)
    dataset = ct("REPLICA1", "REPLICA", "20240301")
    assert store(world.server, dataset).status_code == 200
    authorization = world.admin.grant(
        patient_id=patient("REPLICA"), organisations=[world.organisations["mercy"]]
    )
    metadata = f"/dicom-web/studies/{dataset.StudyInstanceUID}/metadata"
    assert world.request("mercy", metadata, server=replica).status_code == 200

    world.admin.revoke(authorization["id"])
    assert world.request("mercy", metadata, server=replica).status_code == 404
