"""Entries of the trail as DICOM audit messages (PS3.15 A.5.1) and as FHIR R4 AuditEvent resources.

Both are built from an entry's stored content. The DICOM message follows the RELAX NG schema of
PS3.15 A.5.1: EventIdentification, then one ActiveParticipant per party (the requester, this
archive, a peer archive), AuditSourceIdentification, and one ParticipantObjectIdentification per
patient, study, query or record. Coded values use the csd-code, codeSystemName and originalText
attributes. Which party is Source (110153) and which Destination (110152) follows the direction
the data moved: a retrieval goes from the archive to the requester, a store the other way, and
a query from its issuer to the archive that runs it.
"""

from __future__ import annotations

import base64
from typing import Any
from xml.etree import ElementTree

from dicomweb_server.audit.events import DCM, EVENT_IDS, PRIVATE_SCHEME, TYPE_CODES, Code, EventType

SOURCE_ROLE = Code("110153", DCM, "Source Role ID")
DESTINATION_ROLE = Code("110152", DCM, "Destination Role ID")
STUDY_INSTANCE_UID = Code("110180", DCM, "Study Instance UID")
SOP_CLASS_UID = Code("110181", DCM, "SOP Class UID")
PATIENT_NUMBER = Code("2", "RFC-3881", "Patient Number")
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
"""Study Root Query/Retrieve Information Model - FIND, the SOP Class a QIDO-RS search corresponds to."""

APPLICATION_SERVER = "4"
"""AuditSourceTypeCode of an application server process (PS3.15 A.5.1.2.1)."""

FHIR_DCM = "http://dicom.nema.org/resources/ontology/DCM"
FHIR_PRIVATE = "urn:dicomweb-server:codes"
FHIR_ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
FHIR_OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
FHIR_SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"

# Object kinds of RecordObject, and how the DICOM message and the FHIR resource type them:
# (ParticipantObjectTypeCode, ParticipantObjectTypeCodeRole, meaning).
OBJECT_TYPES = {
    "authorization": ("2", "13", "Patient authorization"),
    "refusal": ("2", "13", "Patient refusal to share"),
    "emergency_access": ("2", "13", "Emergency access"),
    "token": ("2", "11", "API token"),
    "organisation": ("3", None, "Organisation"),
    "peer": ("2", "4", "Peer archive"),
    "quarantine": ("2", "4", "Quarantined instance"),
    "instance": ("2", "4", "SOP Instance UID"),
}

_READS = {EventType.BEGIN_TRANSFERRING, EventType.DATA_EXPORT}


def _direction(content: dict[str, Any]) -> tuple[Code | None, Code | None]:
    """Return the roles of (the requester, this archive) in moving the data, or None where none applies."""
    event_type = EventType(content["event_type"])
    action = content["event_action"]
    if event_type is EventType.QUERY:
        return SOURCE_ROLE, DESTINATION_ROLE
    if event_type in _READS or (
        event_type in (EventType.INSTANCES_ACCESSED, EventType.INSTANCES_TRANSFERRED) and action == "R"
    ):
        return DESTINATION_ROLE, SOURCE_ROLE
    if event_type in (EventType.INSTANCES_ACCESSED, EventType.INSTANCES_TRANSFERRED) and action == "C":
        return SOURCE_ROLE, DESTINATION_ROLE
    if event_type is EventType.FEDERATED_QUERY:
        return None, SOURCE_ROLE
    if event_type in (EventType.IMPORT, EventType.FEDERATED_RETRIEVE):
        return None, DESTINATION_ROLE
    return None, None


def _peer_role(content: dict[str, Any]) -> Code:
    return DESTINATION_ROLE if content["event_type"] == EventType.FEDERATED_QUERY else SOURCE_ROLE


def _event_id(content: dict[str, Any]) -> Code:
    return EVENT_IDS[EventType(content["event_type"])]


def _patients(content: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the patients an entry names, each once: those of its studies, then its own patient."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for item in content["studies"]:
        if item.get("patient_id"):
            key = (item["patient_id"], item.get("issuer_of_patient_id") or "")
            found.setdefault(key, {"patient_id": key[0], "issuer": key[1], "name": item.get("patient_name")})
    patient = content.get("patient")
    if patient:
        key = (patient["patient_id"], patient["issuer_of_patient_id"] or "")
        found.setdefault(key, {"patient_id": key[0], "issuer": key[1], "name": None})
    return list(found.values())


def _patient_identifier(patient: dict[str, Any]) -> str:
    """Write a patient identifier as HL7 CX (ID^^^issuer), the form IHE audit messages use."""
    return f"{patient['patient_id']}^^^{patient['issuer']}" if patient["issuer"] else patient["patient_id"]


# DICOM audit message (PS3.15 A.5.1)


def _coded(parent: ElementTree.Element, name: str, code: Code) -> ElementTree.Element:
    return ElementTree.SubElement(
        parent, name, {"csd-code": code.value, "codeSystemName": code.scheme, "originalText": code.meaning}
    )


def _base64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def dicom_audit_message(content: dict[str, Any]) -> str:
    """Return an entry as a DICOM audit message, an XML document without declaration."""
    message = ElementTree.Element("AuditMessage")
    _event_identification(message, content)
    _active_participants(message, content)
    source = ElementTree.SubElement(
        message, "AuditSourceIdentification", {"AuditSourceID": content["source"]}
    )
    ElementTree.SubElement(source, "AuditSourceTypeCode", {"csd-code": APPLICATION_SERVER})
    _participant_objects(message, content)
    return ElementTree.tostring(message, encoding="unicode")


def _event_identification(message: ElementTree.Element, content: dict[str, Any]) -> None:
    event = ElementTree.SubElement(
        message,
        "EventIdentification",
        {
            "EventActionCode": content["event_action"],
            "EventDateTime": content["event_time"],
            "EventOutcomeIndicator": str(content["outcome"]),
        },
    )
    _coded(event, "EventID", _event_id(content))
    if content["type_code"]:
        _coded(event, "EventTypeCode", TYPE_CODES[content["type_code"]])
    if content["failure_reason"]:
        ElementTree.SubElement(event, "EventOutcomeDescription").text = content["failure_reason"]


def _active_participants(message: ElementTree.Element, content: dict[str, Any]) -> None:
    requester_role, archive_role = _direction(content)
    requester = content["requester"]
    attributes = {"UserID": requester["subject"], "UserIsRequestor": "true"}
    if requester["organisation"]:
        attributes["UserName"] = f"{requester['subject']} ({requester['organisation']})"
    if requester["address"]:
        attributes |= {"NetworkAccessPointID": requester["address"], "NetworkAccessPointTypeCode": "2"}
    participant = ElementTree.SubElement(message, "ActiveParticipant", attributes)
    if requester_role:
        _coded(participant, "RoleIDCode", requester_role)

    archive = ElementTree.SubElement(
        message, "ActiveParticipant", {"UserID": content["source"], "UserIsRequestor": "false"}
    )
    if archive_role:
        _coded(archive, "RoleIDCode", archive_role)
    if content["peer"]:
        peer = ElementTree.SubElement(
            message, "ActiveParticipant", {"UserID": content["peer"], "UserIsRequestor": "false"}
        )
        _coded(peer, "RoleIDCode", _peer_role(content))


def _participant_objects(message: ElementTree.Element, content: dict[str, Any]) -> None:
    for patient in _patients(content):
        element = _participant(message, _patient_identifier(patient), "1", "1", PATIENT_NUMBER)
        ElementTree.SubElement(element, "ParticipantObjectName").text = (
            patient["name"] or patient["patient_id"]
        )
        _purpose_details(element, content)
    for study in content["studies"]:
        element = _participant(message, study["study_instance_uid"], "2", "3", STUDY_INSTANCE_UID)
        name = study.get("study_description") or study["study_instance_uid"]
        ElementTree.SubElement(element, "ParticipantObjectName").text = name
        description = ElementTree.SubElement(element, "ParticipantObjectDescription")
        if study.get("accession_number"):
            ElementTree.SubElement(description, "Accession", {"Number": study["accession_number"]})
        if study.get("instances") is not None:
            ElementTree.SubElement(description, "SOPClass", {"NumberOfInstances": str(study["instances"])})
    if content["event_type"] in (EventType.QUERY, EventType.FEDERATED_QUERY):
        element = _participant(message, STUDY_ROOT_FIND, "2", "24", SOP_CLASS_UID)
        ElementTree.SubElement(element, "ParticipantObjectQuery").text = _base64(content["query"] or "")
    for record in content["objects"]:
        type_code, role, meaning = OBJECT_TYPES.get(record["kind"], ("2", None, record["kind"]))
        element = _participant(
            message, record["id"], type_code, role, Code(record["kind"], PRIVATE_SCHEME, meaning)
        )
        ElementTree.SubElement(element, "ParticipantObjectName").text = record["name"] or record["id"]


def _participant(
    message: ElementTree.Element, object_id: str, type_code: str, role: str | None, id_type: Code
) -> ElementTree.Element:
    attributes = {"ParticipantObjectID": object_id, "ParticipantObjectTypeCode": type_code}
    if role:
        attributes["ParticipantObjectTypeCodeRole"] = role
    element = ElementTree.SubElement(message, "ParticipantObjectIdentification", attributes)
    _coded(element, "ParticipantObjectIDTypeCode", id_type)
    return element


def _purpose_details(element: ElementTree.Element, content: dict[str, Any]) -> None:
    """Add the purpose and what allowed the event, as base64 ValuePairs (PS3.15 A.5.1)."""
    details = [("PurposeOfUse", content["purpose"])]
    details += [("Authorization", key) for key in content["authorizations"]]
    details += [("EmergencyAccess", key) for key in content["emergency_accesses"]]
    for kind, value in details:
        if value:
            ElementTree.SubElement(
                element, "ParticipantObjectDetail", {"type": kind, "value": _base64(value)}
            )


# FHIR R4 AuditEvent


def _coding(code: Code) -> dict[str, str]:
    system = FHIR_DCM if code.scheme == DCM else FHIR_PRIVATE
    return {"system": system, "code": code.value, "display": code.meaning}


def fhir_audit_event(content: dict[str, Any]) -> dict[str, Any]:
    """Return an entry as a FHIR R4 AuditEvent resource."""
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": content["event_id"],
        "type": _coding(_event_id(content)),
        "action": content["event_action"],
        "recorded": content["event_time"],
        "outcome": str(content["outcome"]),
        "agent": _fhir_agents(content),
        "source": {
            "site": content["source"],
            "observer": {"display": f"dicomweb-server on {content['source']}"},
            "type": [
                {"system": FHIR_SOURCE_TYPE, "code": APPLICATION_SERVER, "display": "Application Server"}
            ],
        },
        "entity": _fhir_entities(content),
    }
    if content["type_code"]:
        resource["subtype"] = [_coding(TYPE_CODES[content["type_code"]])]
    if content["failure_reason"]:
        resource["outcomeDesc"] = content["failure_reason"]
    if content["purpose"]:
        resource["purposeOfEvent"] = [{"text": content["purpose"]}]
    return resource


def _fhir_agents(content: dict[str, Any]) -> list[dict[str, Any]]:
    requester_role, archive_role = _direction(content)
    requester = content["requester"]
    agent: dict[str, Any] = {
        "who": {"identifier": {"value": requester["subject"]}, "display": requester["subject"]},
        "requestor": True,
    }
    if requester["organisation"]:
        agent["who"]["display"] = f"{requester['subject']} ({requester['organisation']})"
    if requester_role:
        agent["type"] = {"coding": [_coding(requester_role)]}
    if requester["address"]:
        agent["network"] = {"address": requester["address"], "type": "2"}
    archive: dict[str, Any] = {"who": {"display": content["source"]}, "requestor": False}
    if archive_role:
        archive["type"] = {"coding": [_coding(archive_role)]}
    agents = [agent, archive]
    if content["peer"]:
        agents.append(
            {
                "who": {"display": content["peer"]},
                "requestor": False,
                "type": {"coding": [_coding(_peer_role(content))]},
            }
        )
    return agents


def _fhir_entities(content: dict[str, Any]) -> list[dict[str, Any]]:
    entities: list[dict[str, Any]] = []
    for patient in _patients(content):
        identifier: dict[str, Any] = {"value": patient["patient_id"]}
        if patient["issuer"]:
            identifier["assigner"] = {"display": patient["issuer"]}
        entity: dict[str, Any] = {
            "what": {"identifier": identifier},
            "type": {"system": FHIR_ENTITY_TYPE, "code": "1", "display": "Person"},
            "role": {"system": FHIR_OBJECT_ROLE, "code": "1", "display": "Patient"},
        }
        if patient["name"]:
            entity["name"] = patient["name"]
        entities.append(entity)
    for study in content["studies"]:
        details = [
            {"type": name, "valueString": str(study[key])}
            for name, key in (
                ("Accession Number", "accession_number"),
                ("Number of Instances", "instances"),
                ("Study Date", "study_date"),
            )
            if study.get(key) is not None
        ]
        entity = {
            "what": {
                "identifier": {"system": "urn:dicom:uid", "value": f"urn:oid:{study['study_instance_uid']}"}
            },
            "type": {"system": FHIR_ENTITY_TYPE, "code": "2", "display": "System Object"},
            "role": {"system": FHIR_OBJECT_ROLE, "code": "3", "display": "Report"},
        }
        if details:
            entity["detail"] = details
        entities.append(entity)
    if content["event_type"] in (EventType.QUERY, EventType.FEDERATED_QUERY):
        entities.append(
            {
                "what": {"identifier": {"system": "urn:dicom:uid", "value": f"urn:oid:{STUDY_ROOT_FIND}"}},
                "type": {"system": FHIR_ENTITY_TYPE, "code": "2", "display": "System Object"},
                "role": {"system": FHIR_OBJECT_ROLE, "code": "24", "display": "Query"},
                "query": _base64(content["query"] or ""),
            }
        )
    for record in content["objects"]:
        type_code, _, meaning = OBJECT_TYPES.get(record["kind"], ("2", None, record["kind"]))
        entity = {
            "what": {"identifier": {"system": f"{FHIR_PRIVATE}:{record['kind']}", "value": record["id"]}},
            "type": {"system": FHIR_ENTITY_TYPE, "code": "3" if type_code == "3" else "2"},
            "description": meaning,
        }
        if record["name"]:
            entity["name"] = record["name"]
        entities.append(entity)
    return entities


def fhir_bundle(contents: list[dict[str, Any]]) -> dict[str, Any]:
    """Return entries as a FHIR R4 Bundle of type collection."""
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": fhir_audit_event(content)} for content in contents],
    }
