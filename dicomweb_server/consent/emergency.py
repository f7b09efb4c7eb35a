"""Emergency access ("break the glass"): a user sees one patient's studies without authorization.

A requester with the emergency scope opens an access by naming the patient exactly (PatientID
and IssuerOfPatientID) and giving a reason. For the configured time, the consent predicate lets
that requester (same organisation, same user or token) see the patient's studies. Opening,
closing and every request served while an access is open raise a security alert. The alert is
a WARNING log line that names the access and the organisation but no patient detail. Each
request also gets a row in ``emergency_access_use`` that keeps its path for the audit.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dicomweb_server.audit import EventType, RecordObject, TypeCode, record_change
from dicomweb_server.audit.events import Code
from dicomweb_server.auth.identity import Requester, Scope
from dicomweb_server.auth.tables import organisation
from dicomweb_server.consent.tables import emergency_access, emergency_access_use
from dicomweb_server.errors import Forbidden, InvalidRequest, NotFound

logger = logging.getLogger(__name__)

MAX_REASON_LENGTH = 2000
MAX_PATIENT_ID_LENGTH = 64


@dataclass(frozen=True)
class EmergencyAccess:
    access_id: str
    organisation: str
    subject: str
    patient_id: str
    issuer_of_patient_id: str
    reason: str
    opened_at: datetime.datetime
    expires_at: datetime.datetime
    closed_at: datetime.datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.access_id,
            "organisation": self.organisation,
            "subject": self.subject,
            "patient_id": self.patient_id,
            "issuer_of_patient_id": self.issuer_of_patient_id or None,
            "reason": self.reason,
            "opened_at": self.opened_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "closed_at": self.closed_at.isoformat() if self.closed_at else None,
        }


def _text(value: Any, name: str, maximum: int, *, required: bool) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise InvalidRequest(f"missing {name}: give it as a non-empty string")
    if len(value) > maximum:
        raise InvalidRequest(f"invalid {name}: {len(value)} characters, the maximum is {maximum}")
    return value.strip()


async def open_emergency_access(
    connection: AsyncConnection,
    requester: Requester,
    *,
    patient_id: Any,
    issuer_of_patient_id: Any,
    reason: Any,
    minutes: int,
    now: datetime.datetime,
) -> EmergencyAccess:
    """Open emergency access to one patient's studies for ``minutes``.

    Raises
    ------
    Forbidden
        When the requester lacks the emergency scope or has no organisation (the local user of
        an open server).
    InvalidRequest
        When the patient or the reason is missing.
    """
    if not requester.has_scope(Scope.EMERGENCY) or requester.organisation_key is None:
        raise Forbidden("opening emergency access needs a token with the emergency scope")
    # NOTE: a refusal the patient recorded (consent.refusals) does not stop emergency access;
    # nothing here checks for one yet.
    patient = _text(patient_id, "patient_id", MAX_PATIENT_ID_LENGTH, required=True)
    issuer = _text(issuer_of_patient_id, "issuer_of_patient_id", MAX_PATIENT_ID_LENGTH, required=False)
    reason_text = _text(reason, "reason (why emergency access is needed)", MAX_REASON_LENGTH, required=True)

    access_id = str(uuid.uuid4())
    expires_at = now + datetime.timedelta(minutes=minutes)
    await connection.execute(
        insert(emergency_access).values(
            access_id=access_id,
            organisation_key=requester.organisation_key,
            subject=requester.subject,
            patient_id=patient,
            issuer_of_patient_id=issuer,
            reason=reason_text,
            opened_at=now,
            expires_at=expires_at,
        )
    )
    logger.warning(
        "Security alert: emergency access %s opened by %s for %d minutes",
        access_id,
        requester.describe(),
        minutes,
    )
    await _record_alert(
        connection,
        "emergency-access.open",
        TypeCode.EMERGENCY_OVERRIDE_STARTED,
        access_id,
        patient,
        issuer,
        reason_text,
        {"expires_at": expires_at.isoformat()},
    )
    return EmergencyAccess(
        access_id,
        requester.organisation or "",
        requester.subject,
        patient,
        issuer,
        reason_text,
        now,
        expires_at,
        None,
    )


_COLUMNS = (*emergency_access.c, organisation.c.name)
_FROM = emergency_access.join(
    organisation, emergency_access.c.organisation_key == organisation.c.organisation_key
)


def _access(row: Any) -> EmergencyAccess:
    return EmergencyAccess(
        access_id=row.access_id,
        organisation=row.name,
        subject=row.subject,
        patient_id=row.patient_id,
        issuer_of_patient_id=row.issuer_of_patient_id,
        reason=row.reason,
        opened_at=row.opened_at,
        expires_at=row.expires_at,
        closed_at=row.closed_at,
    )


async def list_emergency_access(
    connection: AsyncConnection, requester: Requester, *, now: datetime.datetime, open_only: bool
) -> list[EmergencyAccess]:
    """List emergency accesses: every one for an admin, only the requester's own otherwise."""
    statement = select(*_COLUMNS).select_from(_FROM).order_by(emergency_access.c.opened_at.desc())
    if not (requester.affiliated and requester.has_scope(Scope.ADMIN)):
        statement = statement.where(
            emergency_access.c.organisation_key == requester.organisation_key,
            emergency_access.c.subject == requester.subject,
        )
    if open_only:
        statement = statement.where(
            emergency_access.c.closed_at.is_(None), emergency_access.c.expires_at > now
        )
    return [_access(row) for row in await connection.execute(statement)]


async def close_emergency_access(
    connection: AsyncConnection, access_id: str, requester: Requester, *, now: datetime.datetime
) -> EmergencyAccess:
    """Close an emergency access before it expires; its opener or an admin may do so.

    Raises
    ------
    NotFound
        When no access has that id, or it belongs to someone else and the requester is no admin.
    """
    found = await list_emergency_access(connection, requester, now=now, open_only=False)
    match = next((access for access in found if access.access_id == access_id), None)
    if match is None:
        raise NotFound(f"no emergency access with id {access_id!r} that you may close")
    if match.closed_at is None:
        await connection.execute(
            update(emergency_access)
            .where(emergency_access.c.access_id == access_id)
            .values(closed_at=now, closed_by=requester.describe())
        )
        logger.warning("Security alert: emergency access %s closed by %s", access_id, requester.describe())
        await _record_alert(
            connection,
            "emergency-access.close",
            TypeCode.EMERGENCY_OVERRIDE_STOPPED,
            access_id,
            match.patient_id,
            match.issuer_of_patient_id,
            match.reason,
            {"opened_by": f"{match.subject} ({match.organisation})"},
        )
    return dataclasses.replace(match, closed_at=match.closed_at or now)


async def _record_alert(
    connection: AsyncConnection,
    action: str,
    type_code: Code,
    access_id: str,
    patient_id: str,
    issuer_of_patient_id: str,
    reason: str,
    detail: dict[str, Any],
) -> None:
    """Record the opening or closing of an emergency access in the audit trail, in its transaction."""
    await record_change(
        connection,
        EventType.SECURITY_ALERT,
        action,
        type_code=type_code,
        patient_id=patient_id,
        issuer_of_patient_id=issuer_of_patient_id,
        purpose=f"emergency access: {reason}",
        emergency_accesses=[access_id],
        objects=[RecordObject("emergency_access", access_id)],
        detail=detail,
    )


async def open_access_keys(
    connection: AsyncConnection, requester: Requester, now: datetime.datetime
) -> list[tuple[int, str]]:
    """Return (key, id) of the requester's emergency accesses open at ``now``."""
    if not requester.has_scope(Scope.EMERGENCY) or requester.organisation_key is None:
        return []
    rows = await connection.execute(
        select(emergency_access.c.access_key, emergency_access.c.access_id).where(
            emergency_access.c.organisation_key == requester.organisation_key,
            emergency_access.c.subject == requester.subject,
            emergency_access.c.closed_at.is_(None),
            emergency_access.c.opened_at <= now,
            emergency_access.c.expires_at > now,
        )
    )
    return [(row.access_key, row.access_id) for row in rows]


async def record_use(
    connection: AsyncConnection,
    requester: Requester,
    accesses: list[tuple[int, str]],
    *,
    method: str,
    path: str,
    now: datetime.datetime,
) -> None:
    """Record a request served while emergency accesses are open, and raise its security alert."""
    await connection.execute(
        insert(emergency_access_use),
        [{"access_key": key, "used_at": now, "method": method, "path": path} for key, _ in accesses],
    )
    for _, access_id in accesses:
        logger.warning(
            "Security alert: emergency access %s used by %s (%s request)",
            access_id,
            requester.describe(),
            method,
        )
