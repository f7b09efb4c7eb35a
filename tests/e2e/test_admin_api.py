"""The admin API under /admin/api/ on a live server: its responses, its checks and its errors."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.identity import AdminApi, bearer, store, unique
from tests.services import Archive, ServerProcess
from tests.testdata import synthetic_ct, to_bytes

TIMEOUT = 60.0


@pytest.fixture
def api(admin_api: AdminApi) -> httpx.Client:
    return admin_api.http


@pytest.fixture
def external(admin_api: AdminApi) -> Iterator[str]:
    yield admin_api.add_organisation(unique("API External"), affiliated=False)


def test_organisation_add_show_delete(api: httpx.Client) -> None:
    name = unique("API Org")
    added = api.post("/admin/api/organisations", json={"name": name, "affiliated": False})
    assert added.status_code == 201
    assert added.json()["affiliated"] is False
    assert api.get(f"/admin/api/organisations/{name}").json()["name"] == name
    assert name in [item["name"] for item in api.get("/admin/api/organisations").json()]

    assert api.delete(f"/admin/api/organisations/{name}").status_code == 200
    assert api.get(f"/admin/api/organisations/{name}").status_code == 404
    deleted = api.get("/admin/api/organisations", params={"include_deleted": "true"}).json()
    assert any(item["name"] == name and item["deleted_at"] for item in deleted)


def test_organisation_duplicate_conflicts(api: httpx.Client, external: str) -> None:
    response = api.post("/admin/api/organisations", json={"name": external, "affiliated": True})
    assert response.status_code == 409
    assert "already exists" in response.json()["message"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "No Kind"}, "missing field 'affiliated'"),
        ({"name": "", "affiliated": False}, "name: it is empty"),
        ({"name": "Bad Kind", "affiliated": "yes"}, "is not true or false"),
        ({"affiliated": True}, "missing field 'name'"),
    ],
)
def test_organisation_invalid_body(api: httpx.Client, body: dict[str, object], message: str) -> None:
    response = api.post("/admin/api/organisations", json=body)
    assert response.status_code == 400
    assert message in response.json()["message"]


def test_body_must_be_json_object(api: httpx.Client) -> None:
    wrong_type = api.post(
        "/admin/api/organisations", content=b"name=x", headers={"Content-Type": "text/plain"}
    )
    assert wrong_type.status_code == 415
    not_json = api.post(
        "/admin/api/organisations", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert not_json.status_code == 400
    a_list = api.post("/admin/api/organisations", content=b"[]", headers={"Content-Type": "application/json"})
    assert a_list.status_code == 400


def test_token_shown_once(api: httpx.Client, external: str) -> None:
    created = api.post("/admin/api/tokens", json={"organisation": external, "scopes": ["read", "emergency"]})
    assert created.status_code == 201
    document = created.json()
    assert document["token"].startswith(f"dwt_{document['id']}_")
    assert document["scopes"] == ["emergency", "read"]
    assert document["state"] == "active"

    listed = api.get("/admin/api/tokens", params={"organisation": external}).json()
    assert [item["id"] for item in listed] == [document["id"]]
    assert "token" not in listed[0]
    assert document["token"] not in json.dumps(listed)


def test_token_revoked_stops_at_once(server: ServerProcess, api: httpx.Client, external: str) -> None:
    document = api.post("/admin/api/tokens", json={"organisation": external, "scopes": ["read"]}).json()
    url = f"{server.dicomweb}/studies"
    assert httpx.get(url, headers=bearer(document["token"]), timeout=TIMEOUT).status_code == 200
    revoked = api.delete(f"/admin/api/tokens/{document['id']}")
    assert revoked.json()["state"] == "revoked"
    assert httpx.get(url, headers=bearer(document["token"]), timeout=TIMEOUT).status_code == 401


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"scopes": ["read", "write"]}, 400, "unknown scope 'write'"),
        ({"scopes": []}, 400, "no scope given"),
        ({"scopes": ["admin"]}, 400, "cannot hold the admin scope"),
        ({"scopes": ["read"], "expires_at": "2001-01-01"}, 400, "not in the future"),
        ({"scopes": ["read"], "expires_at": "next week"}, 400, "invalid date or time"),
        ({"scopes": "read"}, 400, "give a list of strings"),
    ],
)
def test_token_invalid_request(
    api: httpx.Client, external: str, body: dict[str, object], status: int, message: str
) -> None:
    response = api.post("/admin/api/tokens", json={"organisation": external, **body})
    assert response.status_code == status
    assert message in response.json()["message"]


def test_token_unknown_organisation(api: httpx.Client) -> None:
    response = api.post("/admin/api/tokens", json={"organisation": unique("Nowhere"), "scopes": ["read"]})
    assert response.status_code == 404


def test_authorization_round_trip(api: httpx.Client, external: str, patient_id: str) -> None:
    body = {
        "patient_id": patient_id,
        "issuer_of_patient_id": "HOSPITAL-A",
        "organisations": [external],
        "study_date_from": "2020-01-01",
        "study_date_to": "2020-12-31",
        "starts_at": "2026-01-01",
        "ends_at": "2099-06-30",
        "purpose": "treatment at the receiving facility",
        "reference": "scan 2026-0042 in the document store",
    }
    created = api.post("/admin/api/authorizations", json=body)
    assert created.status_code == 201, created.text
    document = created.json()
    assert document["coverage"] == "date_range"
    assert document["study_date_from"] == "20200101"
    assert document["organisations"] == [external]
    assert document["starts_at"] == "2026-01-01T00:00:00.000000Z"
    assert document["ends_at"] == "2099-07-01T00:00:00.000000Z"
    assert document["ends_at_local"] == "2099-07-01T00:00:00+00:00 (UTC)"
    assert document["recorded_by"].startswith("token ")

    shown = api.get(f"/admin/api/authorizations/{document['id']}").json()
    assert shown == document
    consent = api.get(f"/admin/api/authorizations/{document['id']}/fhir")
    assert consent.headers["content-type"] == "application/fhir+json"
    assert consent.json()["resourceType"] == "Consent"
    assert consent.json()["provision"]["dataPeriod"] == {"start": "2020-01-01", "end": "2020-12-31"}
    listed = api.get(
        "/admin/api/authorizations", params={"patient_id": patient_id, "issuer_of_patient_id": "HOSPITAL-A"}
    ).json()
    assert [item["id"] for item in listed] == [document["id"]]
    assert (
        api.get(
            "/admin/api/authorizations", params={"patient_id": patient_id, "issuer_of_patient_id": "B"}
        ).json()
        == []
    )


def test_authorization_revoke(api: httpx.Client, external: str, patient_id: str) -> None:
    created = api.post(
        "/admin/api/authorizations",
        json={"patient_id": patient_id, "any_external": True, "purpose": "care", "reference": "form"},
    ).json()
    missing_reason = api.post(f"/admin/api/authorizations/{created['id']}/revoke", json={})
    assert missing_reason.status_code == 400
    revoked = api.post(
        f"/admin/api/authorizations/{created['id']}/revoke", json={"reason": "letter of 3 May"}
    )
    assert revoked.json()["state"] == "revoked"
    assert revoked.json()["revocation_reason"] == "letter of 3 May"
    again = api.post(f"/admin/api/authorizations/{created['id']}/revoke", json={"reason": "again"})
    assert again.status_code == 409


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"any_external": True, "purpose": "care", "reference": "form"}, 400, "missing field 'patient_id'"),
        ({"patient_id": "P", "purpose": "care", "reference": "form"}, 400, "missing recipient"),
        ({"patient_id": "P", "any_external": True, "reference": "form"}, 400, "missing field 'purpose'"),
        ({"patient_id": "P", "any_external": True, "purpose": "care"}, 400, "missing field 'reference'"),
        (
            {"patient_id": "P", "organisations": ["Nowhere 000"], "purpose": "care", "reference": "form"},
            404,
            "no organisation named",
        ),
        (
            {
                "patient_id": "P",
                "any_external": True,
                "purpose": "c",
                "reference": "f",
                "ends_at": "2099-13-01",
            },
            400,
            "invalid field 'ends_at'",
        ),
    ],
)
def test_authorization_invalid_request(
    api: httpx.Client, body: dict[str, object], status: int, message: str
) -> None:
    response = api.post("/admin/api/authorizations", json=body)
    assert response.status_code == status, response.text
    assert message in response.json()["message"]


def test_authorization_list_needs_patient(api: httpx.Client) -> None:
    response = api.get("/admin/api/authorizations")
    assert response.status_code == 400
    assert "patient_id" in response.json()["message"]


def test_authorization_unknown_not_found(api: httpx.Client) -> None:
    assert api.get("/admin/api/authorizations/00000000-0000-0000-0000-000000000000").status_code == 404


def test_quarantine_errors(api: httpx.Client) -> None:
    assert api.get("/admin/api/quarantine", params={"status": "pending"}).status_code == 400
    assert api.post("/admin/api/quarantine/00000000-0000-0000-0000-000000000000/accept").status_code == 404
    assert api.get("/admin/api/quarantine", params={"status": "all"}).status_code == 200


def test_emergency_access_closed_by_admin(
    server: ServerProcess, admin_api: AdminApi, external: str, patient_id: str
) -> None:
    user = admin_api.token_headers(external, "read", "emergency")
    opened = httpx.post(
        f"{server.url}/admin/api/emergency-access",
        json={"patient_id": patient_id, "reason": "cardiac arrest", "minutes": 15},
        headers=user,
        timeout=TIMEOUT,
    )
    assert opened.status_code == 201, opened.text
    access = opened.json()
    assert access["organisation"] == external

    too_long = httpx.post(
        f"{server.url}/admin/api/emergency-access",
        json={"patient_id": patient_id, "reason": "x", "minutes": 100_000},
        headers=user,
        timeout=TIMEOUT,
    )
    assert too_long.status_code == 400

    own = httpx.get(f"{server.url}/admin/api/emergency-access", headers=user, timeout=TIMEOUT).json()
    assert [item["id"] for item in own] == [access["id"]]
    closed = admin_api.http.delete(f"/admin/api/emergency-access/{access['id']}")
    assert closed.status_code == 200
    assert closed.json()["closed_at"] is not None
    still_open = admin_api.http.get("/admin/api/emergency-access", params={"open": "true"}).json()
    assert access["id"] not in [item["id"] for item in still_open]


def test_admin_api_needs_admin_scope(server: ServerProcess, admin_api: AdminApi) -> None:
    organisation = admin_api.add_organisation(unique("API Staff"), affiliated=True)
    reader = admin_api.token_headers(organisation, "read", "store")
    response = httpx.get(f"{server.url}/admin/api/organisations", headers=reader, timeout=TIMEOUT)
    assert response.status_code == 403
    assert 'error="insufficient_scope", scope="admin"' in response.headers["www-authenticate"]


def test_sweep_keeps_quarantined_objects(archive: Archive, patient_id: str) -> None:
    server = archive.start()
    admin = AdminApi(server)
    try:
        assert store(server, synthetic_ct(patient_id)).status_code == 200
        sender = admin.token_headers(
            admin.add_organisation(unique("Sweep Sender"), affiliated=False), "store"
        )
        held = synthetic_ct(patient_id)
        assert store(server, held, sender).status_code == 200

        swept = archive.run(["sweep", "--grace-period", "0"])
        assert swept.returncode == 0, swept.stderr

        (item,) = admin.quarantine(study_instance_uid=held.StudyInstanceUID)
        accepted = admin.http.post(f"/admin/api/quarantine/{item['id']}/accept")
        assert accepted.status_code == 200, accepted.text
        retrieved = admin.http.get(
            f"/dicom-web/studies/{held.StudyInstanceUID}",
            headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'},
        )
        assert retrieved.status_code == 200, retrieved.text
        assert to_bytes(held) in retrieved.content
    finally:
        admin.close()


@pytest.mark.parametrize(
    ("path", "body", "named", "hint"),
    [
        (
            "/admin/api/authorizations",
            {"patient_id": "PAT-7", "organisations": ["x"], "purpose": "p", "reference": "r"}
            | {"study_instance_uid": ["1.2.3"]},
            "study_instance_uid",
            "did you mean 'study_instance_uids'?",
        ),
        (
            "/admin/api/authorizations",
            {
                "patient_id": "PAT-7",
                "any_external": True,
                "purpose": "p",
                "reference": "r",
                "until": "2027-01-01",
            },
            "until",
            "the command line's --until is 'ends_at' here",
        ),
        (
            "/admin/api/authorizations",
            {"patient_id": "PAT-7", "any_external": True, "purpose": "p", "reference": "r", "issuer": "H"},
            "issuer",
            "'issuer_of_patient_id'",
        ),
        (
            "/admin/api/tokens",
            {"organisation": "archive", "scopes": ["read"], "expires": "2027-01-01"},
            "expires",
            "'expires_at'",
        ),
        (
            "/admin/api/organisations",
            {"name": "Typo Hospital", "afiliated": False},
            "afiliated",
            "'affiliated'",
        ),
        (
            "/admin/api/emergency-access",
            {"patient_id": "PAT-7", "reason": "r", "minute": 5},
            "minute",
            "'minutes'",
        ),
        ("/admin/api/quarantine/no-such-id/accept", {"notes": "typo"}, "notes", "'note'"),
        ("/admin/api/quarantine/no-such-id/reject", {"nope": 1}, "nope", "accepted fields are note"),
        (
            "/admin/api/refusals",
            {"patient_id": "PAT-7", "reference": "r", "declined": "2026-01-01"},
            "declined",
            "",
        ),
        (
            "/admin/api/peers",
            {"name": "p", "url": "http://127.0.0.1:9/dicom-web", "secret": "s"},
            "secret",
            "",
        ),
    ],
)
def test_admin_body_unknown_field_rejected(
    api: httpx.Client, path: str, body: dict[str, object], named: str, hint: str
) -> None:
    response = api.post(path, json=body)
    assert response.status_code == 400, response.text
    message = response.json()["message"]
    assert f"unknown field {named!r}" in message
    assert "the accepted fields are" in message
    assert hint in message


def test_authorization_revoke_unknown_field_keeps_it(api: httpx.Client, external: str) -> None:
    body = {"patient_id": unique("PAT"), "organisations": [external], "purpose": "p", "reference": "r"}
    recorded = api.post("/admin/api/authorizations", json=body)
    assert recorded.status_code == 201, recorded.text
    identifier = recorded.json()["id"]

    response = api.post(f"/admin/api/authorizations/{identifier}/revoke", json={"reasons": "typo"})

    assert response.status_code == 400
    assert "unknown field 'reasons'" in response.json()["message"]
    assert api.get(f"/admin/api/authorizations/{identifier}").json()["revoked_at"] is None


@pytest.mark.parametrize(
    ("path", "field"),
    [("/admin/api/tokens", "expires_at"), ("/admin/api/authorizations", "ends_at")],
)
def test_admin_far_future_date_rejected(api: httpx.Client, external: str, path: str, field: str) -> None:
    bodies = {
        "/admin/api/tokens": {"organisation": external, "scopes": ["read"]},
        "/admin/api/authorizations": {
            "patient_id": unique("PAT"),
            "organisations": [external],
            "purpose": "p",
            "reference": "r",
        },
    }
    response = api.post(path, json={**bodies[path], field: "9999-12-31"})
    assert response.status_code == 400, response.text
    message = response.json()["message"]
    assert f"invalid field {field!r}" in message
    assert "the latest date accepted is 9998-12-31" in message


def test_affiliated_responses_not_cached(server: ServerProcess, api: httpx.Client) -> None:
    listed = api.get("/admin/api/organisations")
    searched = httpx.get(f"{server.dicomweb}/studies", headers=server.headers, timeout=TIMEOUT)
    for response in (listed, searched):
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store, private"
