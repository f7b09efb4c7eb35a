"""Entries as DICOM audit messages (PS3.15 A.5.1) and FHIR R4 AuditEvents."""

from __future__ import annotations

import base64
import datetime
from typing import Any
from xml.etree import ElementTree

from dicomweb_server.audit import (
    AuditEntry,
    EventAction,
    EventType,
    Outcome,
    RecordObject,
    StudyInvolved,
    Who,
)
from dicomweb_server.audit.events import TypeCode
from dicomweb_server.audit.exports import dicom_audit_message, fhir_audit_event, fhir_bundle

NOW = datetime.datetime(2026, 6, 15, 12, 0, 0, tzinfo=datetime.UTC)
REQUESTER = Who(subject="token 0123456789ab", organisation="Mercy", external=True, address="10.0.0.7")
MESSAGE_ORDER = [
    "EventIdentification",
    "ActiveParticipant",
    "AuditSourceIdentification",
    "ParticipantObjectIdentification",
]


def content(**fields: Any) -> dict[str, Any]:
    fields.setdefault("event_type", EventType.DATA_EXPORT)
    fields.setdefault("action", "RetrieveStudy")
    entry = AuditEntry(who=REQUESTER, event_time=NOW, **fields)
    return entry.to_json("archive-1")


def disclosure() -> dict[str, Any]:
    study = StudyInvolved(
        "1.2.3.4",
        instances=3,
        patient_id="P7",
        issuer_of_patient_id="HOSP",
        patient_name="Doe^Jane",
        accession_number="A1",
    )
    return content(studies=[study], purpose="follow-up care", authorizations=["auth-1"])


def parse(entry: dict[str, Any]) -> ElementTree.Element:
    return ElementTree.fromstring(dicom_audit_message(entry))


def test_dicom_message_follows_schema_order() -> None:
    message = parse(disclosure())
    tags = [child.tag for child in message]
    assert [tag for index, tag in enumerate(tags) if index == 0 or tags[index - 1] != tag] == MESSAGE_ORDER
    for participant in message.findall("ParticipantObjectIdentification"):
        assert [child.tag for child in participant][:2] in (
            ["ParticipantObjectIDTypeCode", "ParticipantObjectName"],
            ["ParticipantObjectIDTypeCode", "ParticipantObjectQuery"],
        )


def test_dicom_message_event_identification() -> None:
    event = parse(
        content(
            event_type=EventType.QUERY,
            action="SearchForStudies",
            outcome=Outcome.MINOR_FAILURE,
            failure_reason="bad key",
        )
    ).find("EventIdentification")
    assert event.attrib == {
        "EventActionCode": "E",
        "EventDateTime": "2026-06-15T12:00:00.000000Z",
        "EventOutcomeIndicator": "4",
    }
    assert event.find("EventID").attrib == {
        "csd-code": "110112",
        "codeSystemName": "DCM",
        "originalText": "Query",
    }
    assert event.find("EventOutcomeDescription").text == "bad key"


def test_dicom_message_retrieval_roles() -> None:
    message = parse(disclosure())
    requester, archive = message.findall("ActiveParticipant")
    assert requester.attrib["UserID"] == "token 0123456789ab"
    assert requester.attrib["UserIsRequestor"] == "true"
    assert requester.attrib["NetworkAccessPointID"] == "10.0.0.7"
    assert requester.find("RoleIDCode").attrib["csd-code"] == "110152"
    assert archive.attrib == {"UserID": "archive-1", "UserIsRequestor": "false"}
    assert archive.find("RoleIDCode").attrib["csd-code"] == "110153"
    source = message.find("AuditSourceIdentification")
    assert source.attrib["AuditSourceID"] == "archive-1"
    assert source.find("AuditSourceTypeCode").attrib == {"csd-code": "4"}


def test_dicom_message_patient_and_study() -> None:
    message = parse(disclosure())
    patient, study = message.findall("ParticipantObjectIdentification")
    assert patient.attrib == {
        "ParticipantObjectID": "P7^^^HOSP",
        "ParticipantObjectTypeCode": "1",
        "ParticipantObjectTypeCodeRole": "1",
    }
    assert patient.find("ParticipantObjectName").text == "Doe^Jane"
    details = {
        item.attrib["type"]: base64.b64decode(item.attrib["value"]).decode()
        for item in patient.findall("ParticipantObjectDetail")
    }
    assert details == {"PurposeOfUse": "follow-up care", "Authorization": "auth-1"}
    assert study.attrib["ParticipantObjectID"] == "1.2.3.4"
    assert study.find("ParticipantObjectIDTypeCode").attrib["csd-code"] == "110180"
    description = study.find("ParticipantObjectDescription")
    assert description.find("Accession").attrib == {"Number": "A1"}
    assert description.find("SOPClass").attrib == {"NumberOfInstances": "3"}


def test_dicom_message_query_object() -> None:
    message = parse(
        content(event_type=EventType.QUERY, action="SearchForStudies", query="PatientID=P7&limit=5")
    )
    (query,) = message.findall("ParticipantObjectIdentification")
    assert query.attrib["ParticipantObjectTypeCodeRole"] == "24"
    assert query.attrib["ParticipantObjectID"] == "1.2.840.10008.5.1.4.1.2.2.1"
    assert base64.b64decode(query.find("ParticipantObjectQuery").text).decode() == "PatientID=P7&limit=5"
    assert message.find("ActiveParticipant/RoleIDCode").attrib["csd-code"] == "110153"


def test_dicom_message_event_type_code() -> None:
    message = parse(
        content(
            event_type=EventType.SECURITY_ALERT,
            action="emergency-access.open",
            type_code=TypeCode.EMERGENCY_OVERRIDE_STARTED,
        )
    )
    assert message.find("EventIdentification/EventTypeCode").attrib == {
        "csd-code": "110127",
        "codeSystemName": "DCM",
        "originalText": "Emergency Override Started",
    }


def test_fhir_event_of_disclosure() -> None:
    resource = fhir_audit_event(disclosure())
    assert resource["resourceType"] == "AuditEvent"
    assert resource["type"] == {
        "system": "http://dicom.nema.org/resources/ontology/DCM",
        "code": "110106",
        "display": "Export",
    }
    assert (resource["action"], resource["outcome"], resource["recorded"]) == (
        "R",
        "0",
        "2026-06-15T12:00:00.000000Z",
    )
    assert resource["purposeOfEvent"] == [{"text": "follow-up care"}]
    requester, archive = resource["agent"]
    assert requester["requestor"] is True
    assert requester["network"] == {"address": "10.0.0.7", "type": "2"}
    assert requester["type"]["coding"][0]["code"] == "110152"
    assert archive["requestor"] is False
    patient, study = resource["entity"]
    assert patient["what"]["identifier"] == {"value": "P7", "assigner": {"display": "HOSP"}}
    assert patient["role"]["code"] == "1"
    assert study["what"]["identifier"]["value"] == "urn:oid:1.2.3.4"
    assert {"type": "Number of Instances", "valueString": "3"} in study["detail"]


def test_fhir_event_of_record_change() -> None:
    entry = content(
        event_type=EventType.PATIENT_RECORD,
        action="authorization.revoke",
        event_action=EventAction.UPDATE,
        patient_id="P7",
        objects=[RecordObject("authorization", "auth-1", "binder 3")],
    )
    resource = fhir_audit_event(entry)
    assert (resource["type"]["code"], resource["action"]) == ("110110", "U")
    assert "type" not in resource["agent"][0]
    patient, authorization = resource["entity"]
    assert patient["what"]["identifier"] == {"value": "P7"}
    assert authorization["what"]["identifier"]["value"] == "auth-1"
    assert authorization["name"] == "binder 3"


def test_fhir_bundle_collects_entries() -> None:
    bundle = fhir_bundle([disclosure(), disclosure()])
    assert (bundle["resourceType"], bundle["type"], len(bundle["entry"])) == ("Bundle", "collection", 2)
