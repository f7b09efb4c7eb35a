"""The audit trail on a live server: every request recorded, entry by entry, and the chain tamper-evident.

The first tests drive requests through the session's server, each with a token of its own, and
read that token's entries back through the admin API. The later ones use an archive of their own,
whose database they change directly (dropping the append-only triggers first, as a database
administrator could) to check that ``audit verify`` finds each change, and that a trail that
cannot be written fails the request.
"""

from __future__ import annotations

import base64
import concurrent.futures
import datetime
import uuid
from typing import Any
from xml.etree import ElementTree

import httpx
import orjson
import pytest
from pydicom.uid import generate_uid

from tests.e2e.trail import (
    allow_changes,
    block_appends,
    entries,
    execute,
    of_subject,
    one,
    query,
    subject_of,
    unblock_appends,
    wait_for_entries,
)
from tests.identity import AdminApi, bearer, store, unique
from tests.services import Archive, ServerProcess
from tests.testdata import synthetic_ct, to_bytes

TIMEOUT = 120.0
AS_STORED = 'multipart/related; type="application/dicom"; transfer-syntax=*'
DICOM_JSON = "application/dicom+json"


def get(server: ServerProcess, path: str, headers: dict[str, str], **params: str) -> httpx.Response:
    return httpx.get(f"{server.url}{path}", params=params, headers=headers, timeout=TIMEOUT)


def external_requester(admin_api: AdminApi, *scopes: str) -> tuple[str, dict[str, Any]]:
    """Return a new external organisation and a token of it."""
    organisation = admin_api.add_organisation(unique("Audit Mercy"), affiliated=False)
    return organisation, admin_api.create_token(organisation, *(scopes or ("read",)))


def affiliated_requester(admin_api: AdminApi, *scopes: str) -> tuple[str, dict[str, Any]]:
    organisation = admin_api.add_organisation(unique("Audit Radiology"), affiliated=True)
    return organisation, admin_api.create_token(organisation, *(scopes or ("read",)))


def stored_ct(server: ServerProcess, patient_id: str, **options: Any) -> Any:
    dataset = synthetic_ct(patient_id, **options)
    response = store(server, dataset)
    assert response.status_code == 200, response.text
    return dataset


# Requests, entry by entry


def test_search_recorded_with_query(server: ServerProcess, admin_api: AdminApi, patient_id: str) -> None:
    organisation, token = affiliated_requester(admin_api)
    response = get(server, "/dicom-web/studies", bearer(token["token"]), PatientID=patient_id)
    assert response.status_code == 200

    (entry,) = of_subject(server, subject_of(token), 1)
    assert entry["event_type"] == "query"
    assert entry["event_code"] == "110112"
    assert entry["action"] == "SearchForStudies"
    assert entry["level"] == "study"
    assert entry["outcome"] == 0
    assert entry["status"] == 200
    assert entry["query"] == f"PatientID={patient_id}"
    assert entry["requester"]["organisation"] == organisation
    assert entry["requester"]["external"] is False
    assert entry["requester"]["address"] == "127.0.0.1"
    assert entry["detail"]["results"] == 0
    assert entry["bytes"] == len(response.content)


def test_external_search_is_disclosure(server: ServerProcess, admin_api: AdminApi, patient_id: str) -> None:
    dataset = stored_ct(server, patient_id)
    organisation, token = external_requester(admin_api)
    granted = admin_api.grant(patient_id=patient_id, organisations=[organisation], purpose="follow-up care")
    response = get(server, "/dicom-web/studies", bearer(token["token"]), PatientID=patient_id)
    assert len(response.json()) == 1

    found = of_subject(server, subject_of(token), 2)
    search = one(found, event_type="query")
    export = one(found, event_type="data-export")
    assert export["request_id"] == search["request_id"]
    assert export["event_code"] == "110106"
    assert export["purpose"] == "follow-up care"
    assert export["authorizations"] == [granted["id"]]
    (study,) = export["studies"]
    assert study["study_instance_uid"] == dataset.StudyInstanceUID
    assert (study["patient_id"], study["accession_number"], study["modalities"]) == (
        patient_id,
        "ACC1",
        ["CT"],
    )
    assert search["authorizations"] == [granted["id"]]


def test_retrieval_recorded_before_and_after(
    server: ServerProcess, admin_api: AdminApi, patient_id: str
) -> None:
    dataset = stored_ct(server, patient_id)
    organisation, token = external_requester(admin_api)
    admin_api.grant(patient_id=patient_id, organisations=[organisation])
    response = get(
        server,
        f"/dicom-web/studies/{dataset.StudyInstanceUID}",
        {**bearer(token["token"]), "Accept": AS_STORED},
    )
    assert response.status_code == 200

    found = of_subject(server, subject_of(token), 3)
    begin = one(found, event_type="begin-transferring")
    end = one(found, event_type="instances-transferred")
    assert begin["sequence"] < end["sequence"]
    assert (begin["action"], begin["status"], begin["instances"]) == ("RetrieveStudy", 200, 1)
    assert end["request_id"] == begin["request_id"]
    assert end["bytes"] == len(response.content)
    assert end["detail"]["completed"] is True
    assert one(found, event_type="data-export")["studies"][0]["instances"] == 1


@pytest.mark.parametrize(
    ("path", "action"),
    [
        ("/metadata", "RetrieveStudyMetadata"),
        ("/rendered", "RetrieveStudyRendered"),
        ("/thumbnail", "RetrieveStudyThumbnail"),
    ],
)
def test_reads_recorded_as_accessed(
    server: ServerProcess, admin_api: AdminApi, patient_id: str, path: str, action: str
) -> None:
    dataset = stored_ct(server, patient_id)
    _, token = affiliated_requester(admin_api)
    response = get(server, f"/dicom-web/studies/{dataset.StudyInstanceUID}{path}", bearer(token["token"]))
    assert response.status_code == 200

    found = of_subject(server, subject_of(token), 1)
    entry = one(found, action=action, event_type="instances-accessed")
    assert entry["studies"][0]["study_instance_uid"] == dataset.StudyInstanceUID
    assert entry["studies"][0]["patient_id"] == patient_id


def test_frames_and_wado_uri_recorded(server: ServerProcess, admin_api: AdminApi, patient_id: str) -> None:
    dataset = stored_ct(server, patient_id)
    _, token = affiliated_requester(admin_api)
    headers = bearer(token["token"])
    instance = (
        f"/dicom-web/studies/{dataset.StudyInstanceUID}/series/{dataset.SeriesInstanceUID}"
        f"/instances/{dataset.SOPInstanceUID}"
    )
    frames = get(
        server,
        f"{instance}/frames/1",
        {**headers, "Accept": "multipart/related; type=application/octet-stream"},
    )
    wado_uri = get(
        server,
        "/wado",
        headers,
        requestType="WADO",
        studyUID=dataset.StudyInstanceUID,
        seriesUID=dataset.SeriesInstanceUID,
        objectUID=dataset.SOPInstanceUID,
        contentType="application/dicom",
    )
    assert (frames.status_code, wado_uri.status_code) == (200, 200)

    found = wait_for_entries(
        server,
        lambda items: len([i for i in items if i["event_type"] == "begin-transferring"]) == 2,
        subject=subject_of(token),
    )
    assert one(found, action="RetrieveFrames", event_type="begin-transferring")["level"] == "frames"
    assert one(found, action="RetrieveWadoUri", event_type="begin-transferring")["level"] == "instance"


def test_hidden_and_absent_study_look_alike(
    server: ServerProcess, admin_api: AdminApi, patient_id: str
) -> None:
    hidden = stored_ct(server, patient_id)
    absent = generate_uid()
    _, token = external_requester(admin_api)
    headers = bearer(token["token"])
    responses = [
        get(server, f"/dicom-web/studies/{uid}/metadata", headers)
        for uid in (hidden.StudyInstanceUID, absent)
    ]

    assert [response.status_code for response in responses] == [404, 404]
    assert responses[0].content == responses[1].content
    for name in ("content-type", "content-length", "cache-control", "www-authenticate"):
        assert responses[0].headers.get(name) == responses[1].headers.get(name)
    found = of_subject(server, subject_of(token), 3)
    alert = one(found, event_type="security-alert")
    assert alert["type_code"] == "110144"
    assert alert["outcome"] == 4
    assert [study["study_instance_uid"] for study in alert["studies"]] == [hidden.StudyInstanceUID]
    assert alert["studies"][0]["patient_id"] == patient_id
    requests = [item for item in found if item["event_type"] == "instances-accessed"]
    assert [(item["status"], item["failure_reason"]) for item in requests] == [(404, "not found")] * 2
    assert alert["request_id"] == requests[0]["request_id"]


def test_unknown_token_recorded(server: ServerProcess) -> None:
    token_id = uuid.uuid4().hex[:12]
    secret = uuid.uuid4().hex
    response = get(server, "/dicom-web/studies", {"Authorization": f"Bearer dwt_{token_id}_{secret}"})
    assert response.status_code == 401

    def mine(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [item for item in items if item["detail"].get("credential") == f"API token {token_id}"]

    found = wait_for_entries(server, lambda items: len(mine(items)) == 1, event_type="user-authentication")
    (entry,) = mine(found)
    assert entry["outcome"] == 4
    assert entry["status"] == 401
    assert entry["failure_reason"] == response.json()["message"]
    assert entry["requester"]["subject"] == "anonymous"
    assert secret not in orjson.dumps(entry).decode()


def test_missing_scope_recorded(server: ServerProcess, admin_api: AdminApi) -> None:
    _, token = affiliated_requester(admin_api, "store")
    response = get(server, "/dicom-web/studies", bearer(token["token"]))
    assert response.status_code == 403

    (entry,) = of_subject(server, subject_of(token), 1)
    assert (entry["event_type"], entry["type_code"], entry["status"]) == ("security-alert", "110147", 403)
    assert "scope" in entry["failure_reason"]


def test_store_recorded_per_instance(server: ServerProcess, admin_api: AdminApi, patient_id: str) -> None:
    _, token = affiliated_requester(admin_api, "store")
    study_uid = generate_uid()
    first = synthetic_ct(patient_id, study_instance_uid=study_uid, instance_number=1)
    second = synthetic_ct(patient_id, study_instance_uid=study_uid, instance_number=2)
    broken = b"not a DICOM instance"
    boundary = "audit-boundary"
    body = (
        b"".join(
            f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode() + part + b"\r\n"
            for part in (to_bytes(first), to_bytes(second), broken)
        )
        + f"--{boundary}--\r\n".encode()
    )
    response = httpx.post(
        f"{server.dicomweb}/studies",
        content=body,
        headers={
            **bearer(token["token"]),
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "Accept": DICOM_JSON,
        },
        timeout=TIMEOUT,
    )
    assert response.status_code == 202

    found = of_subject(server, subject_of(token), 3)
    stored = [item for item in found if item["action"] == "store instance"]
    assert sorted(item["objects"][0]["id"] for item in stored) == sorted(
        [first.SOPInstanceUID, second.SOPInstanceUID]
    )
    assert all(
        item["event_action"] == "C" and item["studies"][0]["patient_id"] == patient_id for item in stored
    )
    request = one(found, action="StoreInstances")
    assert (request["event_type"], request["event_action"], request["status"]) == (
        "instances-transferred",
        "C",
        202,
    )
    assert request["outcome"] == 4
    assert (
        request["detail"]["stored"],
        request["detail"]["already_stored"],
        request["detail"]["failed"],
    ) == (2, 0, 1)
    assert request["studies"][0]["instances"] == 2
    assert max(item["sequence"] for item in stored) < request["sequence"]


def test_authorization_changes_recorded(server: ServerProcess, admin_api: AdminApi, patient_id: str) -> None:
    stored_ct(server, patient_id, study_date="20250601")
    granted = admin_api.grant(patient_id=patient_id, any_external=True)
    stored_ct(server, patient_id, study_date=_days_ahead(0))
    admin_api.revoke(granted["id"], "the patient revoked it")

    found = wait_for_entries(
        server,
        lambda items: len([item for item in items if item["event_type"] == "patient-record"]) >= 3,
        patient_id=patient_id,
    )
    changes = [
        (item["action"], item["event_action"])
        for item in found
        if item["event_type"] == "patient-record" and item["status"] is None
    ]
    assert changes == [
        ("authorization.record", "C"),
        ("authorization.extend", "U"),
        ("authorization.revoke", "U"),
    ]
    extension = one(found, action="authorization.extend")
    assert extension["authorizations"] == [granted["id"]]
    assert extension["detail"]["previous_ends_at"] != extension["detail"]["ends_at"]


def test_refusal_recorded(server: ServerProcess, admin_api: AdminApi, patient_id: str) -> None:
    response = admin_api.http.post(
        "/admin/api/refusals",
        json={"patient_id": patient_id, "reference": "refusal form 7", "note": "declined at check-in"},
    )
    assert response.status_code == 201, response.text
    listed = admin_api.http.get("/admin/api/refusals", params={"patient_id": patient_id}).json()

    assert [item["id"] for item in listed] == [response.json()["id"]]
    found = wait_for_entries(server, lambda items: len(items) >= 1, patient_id=patient_id)
    change = one(found, action="refusal.record", status=None)
    assert (change["event_type"], change["event_action"]) == ("patient-record", "C")
    assert change["objects"][0]["id"] == response.json()["id"]


def test_refusal_rejected_while_authorized(admin_api: AdminApi, patient_id: str) -> None:
    admin_api.grant(patient_id=patient_id, any_external=True)
    response = admin_api.http.post(
        "/admin/api/refusals", json={"patient_id": patient_id, "reference": "form"}
    )
    assert response.status_code == 409
    assert "revoke them first" in response.json()["message"]


def test_emergency_access_recorded(server: ServerProcess, admin_api: AdminApi, patient_id: str) -> None:
    dataset = stored_ct(server, patient_id)
    _, token = external_requester(admin_api, "read", "emergency")
    headers = bearer(token["token"])
    opened = httpx.post(
        f"{server.url}/admin/api/emergency-access",
        json={"patient_id": patient_id, "reason": "unconscious patient in the emergency room"},
        headers=headers,
        timeout=TIMEOUT,
    )
    assert opened.status_code == 201, opened.text
    assert get(server, f"/dicom-web/studies/{dataset.StudyInstanceUID}/metadata", headers).status_code == 200
    closed = httpx.delete(
        f"{server.url}/admin/api/emergency-access/{opened.json()['id']}", headers=headers, timeout=TIMEOUT
    )
    assert closed.status_code == 200

    found = of_subject(server, subject_of(token), 8)
    alerts = [
        item["type_code"] for item in found if item["event_type"] == "security-alert" and item["type_code"]
    ]
    assert alerts == ["110127", "110132", "110138"]
    export = one(found, event_type="data-export")
    assert export["emergency_accesses"] == [opened.json()["id"]]
    assert export["authorizations"] == []
    assert export["purpose"] == "emergency access: unconscious patient in the emergency room"


def test_quarantine_decision_recorded(server: ServerProcess, admin_api: AdminApi, patient_id: str) -> None:
    _, token = external_requester(admin_api, "store")
    dataset = synthetic_ct(patient_id)
    assert store(server, dataset, bearer(token["token"])).status_code == 200
    (held,) = admin_api.quarantine(study_instance_uid=dataset.StudyInstanceUID)
    accepted = admin_api.http.post(f"/admin/api/quarantine/{held['id']}/accept")
    assert accepted.status_code == 200, accepted.text

    sent = one(of_subject(server, subject_of(token), 2), action="store instance")
    assert sent["detail"]["outcome"] == "held in quarantine"
    assert sent["studies"][0]["patient_id"] == patient_id
    found = wait_for_entries(
        server,
        lambda items: any(i["action"] == "quarantine.accept" for i in items),
        study_instance_uid=dataset.StudyInstanceUID,
    )
    decision = one(found, action="quarantine.accept")
    assert decision["event_action"] == "C"
    assert decision["objects"][0] == {"kind": "quarantine", "id": held["id"], "name": None}


def test_entry_exports(server: ServerProcess, admin_api: AdminApi, patient_id: str) -> None:
    stored_ct(server, patient_id)
    organisation, token = external_requester(admin_api)
    admin_api.grant(patient_id=patient_id, organisations=[organisation])
    assert get(server, "/dicom-web/studies", bearer(token["token"]), PatientID=patient_id).status_code == 200
    export = one(of_subject(server, subject_of(token), 2), event_type="data-export")

    xml = admin_api.http.get(f"/admin/api/audit/entries/{export['event_id']}/dicom")
    fhir = admin_api.http.get(f"/admin/api/audit/entries/{export['event_id']}/fhir")

    assert xml.headers["content-type"].startswith("application/xml")
    message = ElementTree.fromstring(xml.text)
    assert [child.tag for child in message][:1] == ["EventIdentification"]
    assert message.find("EventIdentification/EventID").attrib == {
        "csd-code": "110106",
        "codeSystemName": "DCM",
        "originalText": "Export",
    }
    requester = message.find("ActiveParticipant[@UserIsRequestor='true']")
    assert requester.attrib["UserID"] == subject_of(token)
    assert requester.find("RoleIDCode").attrib["csd-code"] == "110152"
    patient = message.find("ParticipantObjectIdentification[@ParticipantObjectTypeCodeRole='1']")
    assert patient.attrib["ParticipantObjectID"] == patient_id
    purpose = patient.find("ParticipantObjectDetail[@type='PurposeOfUse']").attrib["value"]
    assert base64.b64decode(purpose).decode() == "continuing care"
    resource = fhir.json()
    assert fhir.headers["content-type"].startswith("application/fhir+json")
    assert (resource["resourceType"], resource["type"]["code"], resource["action"]) == (
        "AuditEvent",
        "110106",
        "R",
    )
    assert resource["entity"][0]["what"]["identifier"]["value"] == patient_id
    assert resource["purposeOfEvent"] == [{"text": "continuing care"}]


def test_audit_reads_recorded(server: ServerProcess, admin_api: AdminApi) -> None:
    _, token = affiliated_requester(admin_api, "admin")
    response = get(server, "/admin/api/audit/verify", bearer(token["token"]))
    assert response.status_code == 200

    (entry,) = of_subject(server, subject_of(token), 1)
    assert (entry["event_type"], entry["action"]) == ("audit-log-used", "audit.verify")
    assert response.json()["valid"] is True


@pytest.mark.parametrize(
    ("path", "params", "named"),
    [
        ("/admin/api/audit/entries", {"from": "2026-05-01"}, "'from' (this resource calls it 'since')"),
        ("/admin/api/audit/entries", {"offset": "10"}, "'offset' (this resource calls it 'after')"),
        ("/admin/api/audit/export", {"to": "2026-05-31"}, "'to' (this resource calls it 'until')"),
        ("/admin/api/audit/verify", {"anchr": "1:2"}, "'anchr' (did you mean 'anchor'?)"),
        (
            "/admin/api/reports/disclosures",
            {"patient_id": "P", "from": "2026-01-01", "to": "2026-01-02", "issuer": "H"},
            "'issuer' (this resource calls it 'issuer_of_patient_id')",
        ),
        ("/admin/api/reports/availability", {"from": "2026-01-01", "until": "2026-01-02"}, "'until'"),
    ],
)
def test_audit_api_rejects_unknown_parameter(
    admin_api: AdminApi, path: str, params: dict[str, str], named: str
) -> None:
    response = admin_api.http.get(path, params=params)
    assert response.status_code == 400, response.text
    assert f"unknown query parameter {named}" in response.json()["message"]


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"after": "99999999999999999999"}, "'after': '99999999999999999999'"),
        ({"event_type": "disclosure"}, "'event_type': 'disclosure'; use one of query,"),
    ],
)
def test_audit_entries_reject_bad_value(admin_api: AdminApi, params: dict[str, str], named: str) -> None:
    response = admin_api.http.get("/admin/api/audit/entries", params=params)
    assert response.status_code == 400, response.text
    assert f"invalid query parameter {named}" in response.json()["message"]


def test_audit_export_links_next_page(server: ServerProcess, admin_api: AdminApi) -> None:
    for _ in range(3):
        assert get(server, "/dicom-web/studies", server.headers, PatientID="EXPORT-PAGES").status_code == 200
    params = {"event_type": "query", "limit": "2"}

    first = admin_api.http.get("/admin/api/audit/export", params=params)
    bundle = first.json()
    (link,) = bundle["link"]
    second = admin_api.http.get(link["url"])
    as_dicom = admin_api.http.get("/admin/api/audit/export", params={**params, "format": "dicom"})

    assert first.status_code == 200, first.text
    assert len(bundle["entry"]) == 2
    assert link["relation"] == "next"
    assert first.headers["link"] == f'<{link["url"]}>; rel="next"'
    assert "after=" in link["url"]
    assert second.status_code == 200, second.text
    first_ids = {item["resource"]["id"] for item in bundle["entry"]}
    second_ids = {item["resource"]["id"] for item in second.json()["entry"]}
    assert second_ids
    assert not first_ids & second_ids
    assert as_dicom.headers["link"].endswith('; rel="next"')


def _days_ahead(days: int) -> str:
    return (datetime.date.today() + datetime.timedelta(days=days)).strftime("%Y%m%d")


# An archive of its own: the chain under changes made directly in the database


def _archive_with_trail(archive: Archive) -> ServerProcess:
    server = archive.start()
    for number in range(3):
        dataset = synthetic_ct(f"TAMPER-{number}")
        assert store(server, dataset).status_code == 200
        assert (
            get(server, "/dicom-web/studies", server.headers, PatientID=f"TAMPER-{number}").status_code == 200
        )
    server.stop()
    return server


def _verify(archive: Archive, *arguments: str) -> Any:
    return archive.run(["audit", "verify", *arguments])


def _sequence_of(archive: Archive, action: str) -> int:
    rows = query(archive, f"SELECT sequence FROM audit_event WHERE action = '{action}' ORDER BY sequence")
    return int(rows[1][0])


def test_verify_accepts_untouched_trail(archive: Archive) -> None:
    _archive_with_trail(archive)
    result = _verify(archive)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "The audit trail is intact" in result.stdout
    anchor = result.stdout.split("Last entry: ")[1].split()[0]
    again = _verify(archive, "--anchor", anchor)
    assert again.returncode == 0, again.stdout + again.stderr


def test_entries_reject_update_and_delete(archive: Archive) -> None:
    _archive_with_trail(archive)
    for statement in ("UPDATE audit_event SET subject = 'nobody'", "DELETE FROM audit_event"):
        with pytest.raises(Exception, match="append-only"):
            execute(archive, statement)


def test_verify_finds_altered_entry(archive: Archive) -> None:
    _archive_with_trail(archive)
    allow_changes(archive)
    sequence = _sequence_of(archive, "SearchForStudies")
    execute(
        archive,
        "UPDATE audit_event SET content = replace(content, 'TAMPER-1', 'TAMPER-9') "
        f"WHERE sequence = {sequence}",
    )

    result = _verify(archive)
    assert result.returncode == 1
    assert f"broken at entry {sequence} (event " in result.stdout
    assert "does not match its hash" in result.stdout


def test_verify_finds_deleted_entry(archive: Archive) -> None:
    _archive_with_trail(archive)
    allow_changes(archive)
    sequence = _sequence_of(archive, "StoreInstances")
    execute(archive, f"DELETE FROM audit_event WHERE sequence = {sequence}")

    result = _verify(archive)
    assert result.returncode == 1
    assert f"broken at entry {sequence}: entry {sequence} is missing" in result.stdout


def test_verify_reports_before_recording(archive: Archive) -> None:
    """Without its chain head no entry can be written, yet verify still prints its verdict."""
    _archive_with_trail(archive)
    allow_changes(archive)
    execute(archive, "DELETE FROM audit_chain")

    result = _verify(archive)
    assert result.returncode == 1
    assert "The audit trail is broken at entry" in result.stdout
    assert "this check could not be recorded in the audit trail" in result.stderr


def test_verify_finds_reordered_entries(archive: Archive) -> None:
    _archive_with_trail(archive)
    allow_changes(archive)
    sequence = _sequence_of(archive, "SearchForStudies")
    execute(
        archive,
        f"UPDATE audit_event SET sequence = -1 WHERE sequence = {sequence}",
        f"UPDATE audit_event SET sequence = {sequence} WHERE sequence = {sequence + 1}",
        f"UPDATE audit_event SET sequence = {sequence + 1} WHERE sequence = -1",
    )

    result = _verify(archive)
    assert result.returncode == 1
    assert f"broken at entry {sequence} (event " in result.stdout


def test_verify_finds_deleted_last_entries(archive: Archive) -> None:
    _archive_with_trail(archive)
    allow_changes(archive)
    last = int(query(archive, "SELECT max(sequence) FROM audit_event")[0][0])
    execute(archive, f"DELETE FROM audit_event WHERE sequence >= {last - 1}")

    result = _verify(archive)
    assert result.returncode == 1
    assert f"broken at entry {last - 1}: entries {last - 1} to {last} are missing" in result.stdout


def test_verify_finds_inserted_entry(archive: Archive) -> None:
    _archive_with_trail(archive)
    sequence = _sequence_of(archive, "SearchForStudies")
    columns = (
        "request_id, event_time, event_type, action, outcome, subject, organisation, external, "
        "content, previous_hash, hash"
    )
    # A plain INSERT, which the append-only triggers let through.
    execute(
        archive,
        f"INSERT INTO audit_event (sequence, event_id, {columns}) "
        f"SELECT 0, 'a0000000-0000-4000-8000-000000000000', {columns} "
        f"FROM audit_event WHERE sequence = {sequence}",
    )

    result = _verify(archive)
    assert result.returncode == 1
    assert "broken at entry 0 (event a0000000-0000-4000-8000-000000000000)" in result.stdout
    assert "outside the chain" in result.stdout


def test_verify_finds_inserted_study_row(archive: Archive) -> None:
    _archive_with_trail(archive)
    last = int(query(archive, "SELECT max(sequence) FROM audit_event")[0][0])
    execute(
        archive,
        "INSERT INTO audit_event_study (sequence, study_instance_uid, patient_id, issuer_of_patient_id) "
        f"VALUES ({last + 1000}, '1.2.3.4', 'TAMPER-X', '')",
    )

    result = _verify(archive)
    assert result.returncode == 1
    assert f"a study row names entry {last + 1000}, which does not exist" in result.stdout


def test_anchor_finds_cut_chain(archive: Archive) -> None:
    _archive_with_trail(archive)
    last, digest = query(archive, "SELECT sequence, hash FROM audit_event ORDER BY sequence DESC LIMIT 1")[0]
    allow_changes(archive)
    execute(
        archive,
        f"DELETE FROM audit_event WHERE sequence >= {last - 1}",
        f"UPDATE audit_chain SET sequence = {last - 2}, "
        f"hash = (SELECT hash FROM audit_event WHERE sequence = {last - 2})",
    )

    assert _verify(archive).returncode == 0
    result = _verify(archive, "--anchor", f"{last}:{digest}")
    assert result.returncode == 1
    assert f"entry {last}, named by the anchor, is missing" in result.stdout


def test_unwritable_trail_fails_requests(archive: Archive) -> None:
    server = archive.start()
    before = synthetic_ct("BLOCKED-0")
    assert store(server, before).status_code == 200
    block_appends(archive)

    search = get(server, "/dicom-web/studies", server.headers, PatientID="BLOCKED-0")
    retrieve = get(server, f"/dicom-web/studies/{before.StudyInstanceUID}/metadata", server.headers)
    blocked = synthetic_ct("BLOCKED-1")
    stored = store(server, blocked)
    unblock_appends(archive)

    assert (search.status_code, retrieve.status_code, stored.status_code) == (503, 503, 503)
    assert before.StudyInstanceUID not in search.text + retrieve.text
    assert "audit trail" in search.json()["message"]
    after = get(server, "/dicom-web/studies", server.headers, PatientID="BLOCKED-1")
    assert (after.status_code, after.json()) == (200, [])
    assert get(server, "/dicom-web/studies", server.headers, PatientID="BLOCKED-0").status_code == 200
    assert _verify(archive).returncode == 0


def test_concurrent_requests_keep_one_chain(archive: Archive) -> None:
    servers = [archive.start(), archive.start()] if archive.database_url else [archive.start()]
    requests = 40

    def search(number: int) -> int:
        target = servers[number % len(servers)]
        return get(target, "/dicom-web/studies", target.headers, PatientID=f"CONCURRENT-{number}").status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(search, range(requests)))
    for server in servers:
        server.stop()

    assert statuses == [200] * requests
    searches = query(archive, "SELECT count(*) FROM audit_event WHERE event_type = 'query'")
    assert searches[0][0] == requests
    result = _verify(archive)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cli_export_rejects_unknown_type(archive: Archive) -> None:
    result = archive.run(["audit", "export", "--event-type", "disclosure"])
    assert result.returncode == 2
    assert "invalid choice: 'disclosure'" in result.stderr
    assert "data-export" in result.stderr


def test_cli_export_formats(archive: Archive) -> None:
    _archive_with_trail(archive)
    as_json = archive.run(["audit", "export", "--event-type", "query"])
    as_fhir = archive.run(["audit", "export", "--event-type", "query", "--format", "fhir"])
    as_dicom = archive.run(["audit", "export", "--event-type", "query", "--format", "dicom"])

    lines = [orjson.loads(line) for line in as_json.stdout.splitlines()]
    assert [item["action"] for item in lines] == ["SearchForStudies"] * 3
    bundle = orjson.loads(as_fhir.stdout)
    assert [entry["resource"]["type"]["code"] for entry in bundle["entry"]] == ["110112"] * 3
    messages = [ElementTree.fromstring(line) for line in as_dicom.stdout.splitlines()]
    assert [item.find("EventIdentification/EventID").attrib["csd-code"] for item in messages] == [
        "110112"
    ] * 3
    logged = entries(archive.start(), event_type="audit-log-used")
    assert [item["action"] for item in logged] == ["audit.export"] * 3


def test_cli_disclosures_need_patient_id(archive: Archive) -> None:
    result = archive.run(
        ["audit", "disclosures", "--patient-id", " ", "--from", "2026-01-01", "--to", "2026-01-31"]
    )
    assert result.returncode == 2
    assert "argument --patient-id: it is empty" in result.stderr
