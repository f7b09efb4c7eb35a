"""Completing entries before they are written: patients of the studies, and what an external requester got.

Recording code names studies by their StudyInstanceUID only. Here, in the transaction that
writes the entries, each study gets its patient (PatientID, IssuerOfPatientID, PatientName),
AccessionNumber, StudyDate, StudyDescription and modalities from the index. For an external
requester, an entry that ``discloses`` its studies gets the authorizations that allowed it, their
purposes and any emergency access used, and is followed by a ``data-export`` entry (and a
``security-alert`` when emergency access was used). An entry whose request named studies that
exist but that the requester may not see is followed by a ``security-alert``. The requester got
the same response as for a study that does not exist, so only the trail distinguishes them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, and_, bindparam, not_, select

from dicomweb_server.audit.events import (
    AuditEntry,
    EventAction,
    EventType,
    Outcome,
    StudyInvolved,
    TypeCode,
    new_id,
)
from dicomweb_server.consent.policy import authorizations_in_force, visible_studies
from dicomweb_server.consent.tables import emergency_access
from dicomweb_server.index.schema import series, study

LOOKUP_CHUNK = 500
"""StudyInstanceUIDs per IN list, well below the bound-parameter limits of SQLite and asyncpg."""

# Built once, because it runs for every stored instance and building a statement costs CPU on every call.
_STUDIES_WITH_MODALITIES = (
    select(
        study.c.study_instance_uid,
        study.c.patient_id,
        study.c.issuer_of_patient_id,
        study.c.patient_name,
        study.c.accession_number,
        study.c.study_date,
        study.c.study_description,
        series.c.modality,
    )
    .select_from(study.outerjoin(series, series.c.study_key == study.c.study_key))
    .where(study.c.study_instance_uid.in_(bindparam("uids", expanding=True)))
)

HIDDEN_STUDY_REASON = "no authorization in force lets the requester's organisation see this study"


def resolve_entries(connection: Connection, entries: list[AuditEntry]) -> list[AuditEntry]:
    """Complete the entries and return them, each followed by the entries derived from it."""
    wanted = {
        item.study_instance_uid for entry in entries for item in entry.studies if item.patient_id is None
    }
    wanted |= {uid for entry in entries if _checks_requests(entry) for uid in entry.requested_studies}
    known = _find_studies(connection, wanted)
    for entry in entries:
        entry.studies = [_completed(item, known) for item in entry.studies]

    resolved: list[AuditEntry] = []
    for entry in entries:
        resolved.append(entry)
        if _discloses_externally(entry):
            resolved += _disclosure(connection, entry)
        if _checks_requests(entry):
            resolved += _hidden_studies(connection, entry, known)
    return resolved


def _discloses_externally(entry: AuditEntry) -> bool:
    return (
        entry.discloses
        and entry.who.external
        and entry.outcome is Outcome.SUCCESS
        and bool(entry.studies)
        and entry.requester is not None
        and entry.requester.organisation_key is not None
    )


def _checks_requests(entry: AuditEntry) -> bool:
    return (
        bool(entry.requested_studies)
        and entry.who.external
        and entry.requester is not None
        and entry.requester.organisation_key is not None
    )


def _find_studies(connection: Connection, uids: set[str]) -> dict[str, StudyInvolved]:
    found: dict[str, StudyInvolved] = {}
    ordered = sorted(uids)
    for start in range(0, len(ordered), LOOKUP_CHUNK):
        chunk = ordered[start : start + LOOKUP_CHUNK]
        rows = connection.execute(_STUDIES_WITH_MODALITIES, {"uids": chunk})
        for row in rows:
            item = found.setdefault(
                row.study_instance_uid,
                StudyInvolved(
                    study_instance_uid=row.study_instance_uid,
                    patient_id=row.patient_id,
                    issuer_of_patient_id=row.issuer_of_patient_id or "",
                    patient_name=row.patient_name,
                    accession_number=row.accession_number,
                    study_date=row.study_date,
                    study_description=row.study_description,
                ),
            )
            if row.modality and row.modality not in item.modalities:
                item.modalities.append(row.modality)
    for item in found.values():
        item.modalities.sort()
    return found


def _completed(item: StudyInvolved, known: dict[str, StudyInvolved]) -> StudyInvolved:
    if item.patient_id is not None or item.study_instance_uid not in known:
        return item
    return dataclasses.replace(known[item.study_instance_uid], instances=item.instances)


def _disclosure(connection: Connection, entry: AuditEntry) -> list[AuditEntry]:
    """Name what allowed a disclosure on the entry, and return its data-export entry (and alert)."""
    assert entry.requester is not None and entry.requester.organisation_key is not None
    uids = [item.study_instance_uid for item in entry.studies]
    allowed: dict[str, list[tuple[str, str]]] = {}
    for start in range(0, len(uids), LOOKUP_CHUNK):
        statement = authorizations_in_force(entry.requester.organisation_key, entry.event_time).where(
            study.c.study_instance_uid.in_(uids[start : start + LOOKUP_CHUNK])
        )
        for row in connection.execute(statement):
            allowed.setdefault(row.study_instance_uid, []).append((row.authorization_id, row.purpose))

    emergency_only = [item for item in entry.studies if item.study_instance_uid not in allowed]
    accesses = _emergency_accesses(connection, entry, emergency_only)
    entry.authorizations = sorted({key for pairs in allowed.values() for key, _ in pairs})
    entry.emergency_accesses = sorted(accesses)
    entry.purpose = _purpose(allowed.values(), accesses.values())

    derived = [
        _derived(
            entry, EventType.DATA_EXPORT, event_action=EventAction.READ, type_code=None, studies=entry.studies
        )
    ]
    if accesses:
        derived.append(
            _derived(
                entry,
                EventType.SECURITY_ALERT,
                event_action=EventAction.EXECUTE,
                type_code=TypeCode.USE_OF_RESTRICTED_FUNCTION,
                studies=emergency_only,
                detail={"alert": "emergency access used"},
            )
        )
    return derived


def _emergency_accesses(
    connection: Connection, entry: AuditEntry, studies: list[StudyInvolved]
) -> dict[str, str]:
    """Return {access id: reason} of the requester's emergency accesses open for these studies' patients."""
    assert entry.requester is not None
    patients = {(item.patient_id, item.issuer_of_patient_id or "") for item in studies if item.patient_id}
    if not patients:
        return {}
    access = emergency_access.c
    rows = connection.execute(
        select(access.access_id, access.reason, access.patient_id, access.issuer_of_patient_id).where(
            access.organisation_key == entry.requester.organisation_key,
            access.subject == entry.requester.subject,
            access.opened_at <= entry.event_time,
            access.expires_at > entry.event_time,
            (access.closed_at.is_(None)) | (access.closed_at > entry.event_time),
        )
    )
    return {
        row.access_id: row.reason for row in rows if (row.patient_id, row.issuer_of_patient_id) in patients
    }


def _purpose(authorized: Iterable[list[tuple[str, str]]], emergency_reasons: Iterable[str]) -> str | None:
    purposes = sorted({purpose for pairs in authorized for _, purpose in pairs})
    purposes += [f"emergency access: {reason}" for reason in sorted(set(emergency_reasons))]
    return "; ".join(purposes) or None


def _hidden_studies(
    connection: Connection, entry: AuditEntry, known: dict[str, StudyInvolved]
) -> list[AuditEntry]:
    """Return a security alert naming the requested studies that exist but that the requester may not see."""
    assert entry.requester is not None
    existing = sorted(uid for uid in set(entry.requested_studies) if uid in known)
    if not existing:
        return []
    rows = connection.execute(
        select(study.c.study_instance_uid).where(
            study.c.study_instance_uid.in_(existing),
            not_(and_(visible_studies(entry.requester, entry.event_time))),
        )
    )
    hidden = sorted(row.study_instance_uid for row in rows)
    if not hidden:
        return []
    alert = _derived(
        entry,
        EventType.SECURITY_ALERT,
        event_action=EventAction.EXECUTE,
        type_code=TypeCode.AUTHORIZATION_DECISION,
        studies=[known[uid] for uid in hidden],
        detail={"alert": "request for a study the requester may not see, answered as not found"},
    )
    alert.outcome = Outcome.MINOR_FAILURE
    alert.failure_reason = HIDDEN_STUDY_REASON
    return [alert]


def _derived(
    entry: AuditEntry,
    event_type: EventType,
    *,
    event_action: EventAction,
    type_code: Any,
    studies: list[StudyInvolved],
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    """Return a new entry of the same request, requester and time as ``entry``."""
    return dataclasses.replace(
        entry,
        event_type=event_type,
        event_action=event_action,
        type_code=type_code,
        event_id=new_id(),
        outcome=Outcome.SUCCESS,
        failure_reason=None,
        studies=[dataclasses.replace(item) for item in studies],
        objects=list(entry.objects),
        bytes_sent=None,
        detail=dict(detail or {}),
        discloses=False,
        requested_studies=[],
    )
