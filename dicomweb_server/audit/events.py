"""The audit record: event types after DICOM PS3.15 Annex A.5, outcomes, and one entry of the trail.

An :class:`AuditEntry` records when an event happened (UTC), who caused it (subject, organisation,
client address), what it concerned (action, level, studies with their patient, instance count,
bytes sent), why (the purpose of the authorization or the emergency-access reason), how it ended
(outcome, HTTP status, failure reason) and which authorizations allowed it for an external
requester. It never holds a token; an API token is named by its public id only.

Every event type maps to an EventID of PS3.16 CID 400 (the code system DCM). Two types are our
own refinements of the DICOM Query and Instances Transferred events for traffic with peer archives:
their EventTypeCode uses the private coding scheme ``99DWS`` of this archive.
"""

from __future__ import annotations

import datetime
import enum
import uuid
from dataclasses import dataclass, field
from typing import Any

from dicomweb_server.auth.identity import Requester

DCM = "DCM"
"""Coding scheme designator of the DICOM Controlled Terminology (PS3.16)."""

PRIVATE_SCHEME = "99DWS"
"""Private coding scheme designator of this archive's own codes (PS3.16 8.2 reserves "99")."""


@dataclass(frozen=True)
class Code:
    """A coded value: code value, coding scheme designator and code meaning."""

    value: str
    scheme: str
    meaning: str


class EventAction(enum.StrEnum):
    """EventActionCode of PS3.15 A.5.1: what the event did to the data."""

    CREATE = "C"
    READ = "R"
    UPDATE = "U"
    DELETE = "D"
    EXECUTE = "E"


class Outcome(enum.IntEnum):
    """EventOutcomeIndicator of PS3.15 A.5.1.

    The archive writes MINOR_FAILURE for requests it refused or could not serve because of the
    request (every 4xx status, a client that went away), and SERIOUS_FAILURE when the archive
    itself failed (5xx, a transfer cut off by an error).
    """

    SUCCESS = 0
    MINOR_FAILURE = 4
    SERIOUS_FAILURE = 8
    MAJOR_FAILURE = 12


class EventType(enum.StrEnum):
    """The kinds of audit entries, each with its DICOM EventID and usual EventActionCode.

    ``query``
        A search (QIDO-RS), by anyone. The entry contains the query, not the results.
    ``begin-transferring``
        A retrieval of instances, frames or bulk data starts; written before the first byte.
    ``instances-transferred``
        Instances were received (STOW-RS, action C) or a streamed response ended (action R,
        with the bytes sent and whether it completed).
    ``instances-accessed``
        Metadata, rendered images or thumbnails were read (R); an instance was stored in the
        index or held in quarantine (C); a quarantined instance was accepted (C) or rejected (D).
    ``data-export``
        A disclosure: an external requester received patient data (search results, metadata,
        images). The accounting of disclosures is built from these entries.
    ``patient-record``
        An authorization or a patient's refusal was recorded (C), extended or revoked (U).
    ``security-alert``
        A request denied by scope or by consent, emergency access opened, used or closed, or a
        change of organisations or tokens.
    ``user-authentication``
        A request whose bearer token was missing or could not be trusted.
    ``audit-log-used``
        The trail was read: listed, exported, verified, or a report was built from it.
    ``application-activity``
        A server process started or stopped.
    ``import``
        Instances were received from a peer archive and stored here.
    ``federated-query``
        This archive searched a peer archive on behalf of one of its users (one entry per peer).
    ``federated-retrieve``
        This archive retrieved from a peer archive on behalf of one of its users.
    """

    QUERY = "query"
    BEGIN_TRANSFERRING = "begin-transferring"
    INSTANCES_TRANSFERRED = "instances-transferred"
    INSTANCES_ACCESSED = "instances-accessed"
    DATA_EXPORT = "data-export"
    PATIENT_RECORD = "patient-record"
    SECURITY_ALERT = "security-alert"
    USER_AUTHENTICATION = "user-authentication"
    AUDIT_LOG_USED = "audit-log-used"
    APPLICATION_ACTIVITY = "application-activity"
    IMPORT = "import"
    FEDERATED_QUERY = "federated-query"
    FEDERATED_RETRIEVE = "federated-retrieve"

    @property
    def event_id(self) -> Code:
        return EVENT_IDS[self]

    @property
    def default_action(self) -> EventAction:
        return DEFAULT_ACTIONS[self]


EVENT_IDS = {
    EventType.APPLICATION_ACTIVITY: Code("110100", DCM, "Application Activity"),
    EventType.AUDIT_LOG_USED: Code("110101", DCM, "Audit Log Used"),
    EventType.BEGIN_TRANSFERRING: Code("110102", DCM, "Begin Transferring DICOM Instances"),
    EventType.INSTANCES_ACCESSED: Code("110103", DCM, "DICOM Instances Accessed"),
    EventType.INSTANCES_TRANSFERRED: Code("110104", DCM, "DICOM Instances Transferred"),
    EventType.DATA_EXPORT: Code("110106", DCM, "Export"),
    EventType.IMPORT: Code("110107", DCM, "Import"),
    EventType.PATIENT_RECORD: Code("110110", DCM, "Patient Record"),
    EventType.QUERY: Code("110112", DCM, "Query"),
    EventType.SECURITY_ALERT: Code("110113", DCM, "Security Alert"),
    EventType.USER_AUTHENTICATION: Code("110114", DCM, "User Authentication"),
    EventType.FEDERATED_QUERY: Code("110112", DCM, "Query"),
    EventType.FEDERATED_RETRIEVE: Code("110104", DCM, "DICOM Instances Transferred"),
}

DEFAULT_ACTIONS = {
    EventType.APPLICATION_ACTIVITY: EventAction.EXECUTE,
    EventType.AUDIT_LOG_USED: EventAction.READ,
    EventType.BEGIN_TRANSFERRING: EventAction.EXECUTE,
    EventType.INSTANCES_ACCESSED: EventAction.READ,
    EventType.INSTANCES_TRANSFERRED: EventAction.READ,
    EventType.DATA_EXPORT: EventAction.READ,
    EventType.IMPORT: EventAction.CREATE,
    EventType.PATIENT_RECORD: EventAction.UPDATE,
    EventType.QUERY: EventAction.EXECUTE,
    EventType.SECURITY_ALERT: EventAction.EXECUTE,
    EventType.USER_AUTHENTICATION: EventAction.EXECUTE,
    EventType.FEDERATED_QUERY: EventAction.EXECUTE,
    EventType.FEDERATED_RETRIEVE: EventAction.READ,
}


class TypeCode:
    """EventTypeCode values (PS3.16 CID 401, and this archive's own) that refine an event type."""

    APPLICATION_START = Code("110120", DCM, "Application Start")
    APPLICATION_STOP = Code("110121", DCM, "Application Stop")
    EMERGENCY_OVERRIDE_STARTED = Code("110127", DCM, "Emergency Override Started")
    SECURITY_CONFIGURATION = Code("110129", DCM, "Security Configuration")
    USE_OF_RESTRICTED_FUNCTION = Code("110132", DCM, "Use of Restricted Function")
    USER_SECURITY_ATTRIBUTES_CHANGED = Code("110137", DCM, "User Security Attributes Changed")
    EMERGENCY_OVERRIDE_STOPPED = Code("110138", DCM, "Emergency Override Stopped")
    AUTHENTICATION_DECISION = Code("110143", DCM, "Authentication Decision")
    AUTHORIZATION_DECISION = Code("110144", DCM, "Authorization Decision")
    ACCESS_CONTROL_DECISION = Code("110147", DCM, "Access Control Decision")
    FEDERATED_QUERY = Code("federated-query", PRIVATE_SCHEME, "Query of a peer archive")
    FEDERATED_RETRIEVE = Code("federated-retrieve", PRIVATE_SCHEME, "Retrieval from a peer archive")


TYPE_CODES = {
    code.value: code
    for name, code in vars(TypeCode).items()
    if not name.startswith("_") and isinstance(code, Code)
}


def outcome_of_status(status: int) -> Outcome:
    """Return the outcome of an HTTP status: 2xx and 3xx succeed, 4xx are minor, 5xx serious failures."""
    if status < 400:
        return Outcome.SUCCESS
    if status < 500:
        return Outcome.MINOR_FAILURE
    return Outcome.SERIOUS_FAILURE


@dataclass(frozen=True)
class Who:
    """The requester of an event as the trail keeps it.

    ``subject`` is "token <id>" for an API token, "user <sub>" for an OIDC user, "cli <login>"
    for a command, or "dicomweb-server" for the archive itself. ``external`` is true for
    organisations that are not affiliated with the archive.
    """

    subject: str
    organisation: str | None = None
    external: bool = False
    address: str | None = None
    user_agent: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "organisation": self.organisation,
            "external": self.external,
            "address": self.address,
            "user_agent": self.user_agent,
        }


ARCHIVE = Who(subject="dicomweb-server")
"""The archive itself, for events no person or organisation caused (a server start)."""


@dataclass
class StudyInvolved:
    """A study an event concerned, with its patient.

    The recording code names the study. The patient fields are filled from the index when the
    entry is written, unless the recording code gave them, as it does for an instance held in
    quarantine, which has no index row.
    """

    study_instance_uid: str
    instances: int | None = None
    patient_id: str | None = None
    issuer_of_patient_id: str | None = None
    patient_name: str | None = None
    accession_number: str | None = None
    study_date: str | None = None
    study_description: str | None = None
    modalities: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        # Written out, because dataclasses.asdict deep-copies every value and this runs for
        # every study of every entry written.
        return {
            "study_instance_uid": self.study_instance_uid,
            "instances": self.instances,
            "patient_id": self.patient_id,
            "issuer_of_patient_id": self.issuer_of_patient_id,
            "patient_name": self.patient_name,
            "accession_number": self.accession_number,
            "study_date": self.study_date,
            "study_description": self.study_description,
            "modalities": list(self.modalities),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StudyInvolved:
        return cls(**data)


@dataclass
class RecordObject:
    """A record that is not a study: an authorization, refusal, organisation, token, peer, query."""

    kind: str
    id: str
    name: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.id, "name": self.name}


def new_id() -> str:
    return str(uuid.uuid4())


def utc_text(instant: datetime.datetime) -> str:
    """Write an instant in UTC with microseconds and a Z, the one form the trail stores."""
    return instant.astimezone(datetime.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_utc(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class AuditEntry:
    """One event of the trail, before it is written.

    ``patient_id`` and ``issuer_of_patient_id`` name a patient the event concerned without a
    study (an authorization of a patient who has no stored study yet). ``detail`` contains values
    particular to one kind of event, as JSON values (strings, numbers, booleans, lists, objects).
    """

    event_type: EventType
    who: Who
    event_time: datetime.datetime
    action: str
    event_action: EventAction | None = None
    outcome: Outcome = Outcome.SUCCESS
    type_code: Code | None = None
    request_id: str | None = None
    event_id: str = field(default_factory=new_id)
    level: str | None = None
    method: str | None = None
    path: str | None = None
    query: str | None = None
    status: int | None = None
    failure_reason: str | None = None
    purpose: str | None = None
    authorizations: list[str] = field(default_factory=list)
    emergency_accesses: list[str] = field(default_factory=list)
    studies: list[StudyInvolved] = field(default_factory=list)
    patient_id: str | None = None
    issuer_of_patient_id: str | None = None
    objects: list[RecordObject] = field(default_factory=list)
    instances: int | None = None
    bytes_sent: int | None = None
    peer: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    requester: Requester | None = field(default=None, repr=False)
    discloses: bool = False
    requested_studies: list[str] = field(default_factory=list)

    def to_json(self, source: str) -> dict[str, Any]:
        """Return the entry as the JSON object the trail stores and hashes.

        ``source`` names the server process that wrote it (the host name of the replica).
        """
        event_action = self.event_action or self.event_type.default_action
        return {
            "event_id": self.event_id,
            "request_id": self.request_id,
            "event_time": utc_text(self.event_time),
            "event_type": str(self.event_type),
            "event_code": self.event_type.event_id.value,
            "event_action": str(event_action),
            "type_code": self.type_code.value if self.type_code else None,
            "outcome": int(self.outcome),
            "status": self.status,
            "failure_reason": self.failure_reason,
            "action": self.action,
            "level": self.level,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "requester": self.who.to_json(),
            "source": source,
            "purpose": self.purpose,
            "authorizations": sorted(set(self.authorizations)),
            "emergency_accesses": sorted(set(self.emergency_accesses)),
            "studies": [item.to_json() for item in self.studies],
            "patient": _patient_json(self.patient_id, self.issuer_of_patient_id),
            "objects": [item.to_json() for item in self.objects],
            "instances": self.instances,
            "bytes": self.bytes_sent,
            "peer": self.peer,
            "detail": self.detail,
        }


def _patient_json(patient_id: str | None, issuer: str | None) -> dict[str, Any] | None:
    if patient_id is None:
        return None
    return {"patient_id": patient_id, "issuer_of_patient_id": issuer or ""}
