"""Patients' refusals: the record that a patient declined to authorize sharing with external facilities.

A refusal hides nothing more, because without an authorization external requesters see none of
the patient's studies anyway. It documents the patient's choice, so that the availability
report gives "patient declined" as the reason a CT study was not made available, instead of
"no authorization". A refusal is recorded only while no authorization of the patient is in
force, so that the records do not contradict each other. An authorization in force must be
revoked first.
An authorization recorded after a refusal supersedes it.
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from dicomweb_server.audit import EventAction, EventType, RecordObject, record_change
from dicomweb_server.consent import periods
from dicomweb_server.consent.tables import patient_authorization, patient_refusal
from dicomweb_server.errors import Conflict, InvalidRequest, NotFound

MAX_TEXT_LENGTH = 2000
MAX_PATIENT_ID_LENGTH = 64


@dataclass(frozen=True)
class Refusal:
    refusal_id: str
    patient_id: str
    issuer_of_patient_id: str
    declined_at: datetime.datetime
    reference: str
    note: str | None
    recorded_by: str
    recorded_at: datetime.datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.refusal_id,
            "patient_id": self.patient_id,
            "issuer_of_patient_id": self.issuer_of_patient_id or None,
            "declined_at": periods.format_utc(self.declined_at),
            "reference": self.reference,
            "note": self.note,
            "recorded_by": self.recorded_by,
            "recorded_at": periods.format_utc(self.recorded_at),
        }


def _text(value: str | None, name: str, maximum: int, *, required: bool) -> str | None:
    cleaned = value.strip() if isinstance(value, str) else ""
    if not cleaned:
        if required:
            raise InvalidRequest(f"missing {name}: give it as a non-empty string")
        return None
    if len(cleaned) > maximum:
        raise InvalidRequest(f"invalid {name}: {len(cleaned)} characters, the maximum is {maximum}")
    return cleaned


async def record_refusal(
    connection: AsyncConnection,
    *,
    patient_id: str,
    issuer_of_patient_id: str,
    reference: str,
    note: str | None,
    declined_at: datetime.datetime | None,
    by: str,
    now: datetime.datetime,
) -> Refusal:
    """Record that a patient declined to authorize sharing, in the caller's transaction.

    Raises
    ------
    InvalidRequest
        When the patient or the reference is missing, or the refusal is dated in the future.
    Conflict
        When an authorization of the patient is in force; revoke it first.
    """
    patient = _text(patient_id, "patient_id", MAX_PATIENT_ID_LENGTH, required=True) or ""
    issuer = (issuer_of_patient_id or "").strip()
    reference_text = (
        _text(
            reference,
            "reference (where the signed refusal or a note of it is kept)",
            MAX_TEXT_LENGTH,
            required=True,
        )
        or ""
    )
    declined = declined_at or now
    if declined > now:
        raise InvalidRequest(f"invalid declined_at {periods.format_utc(declined)}: it is in the future")
    await _check_no_authorization_in_force(connection, patient, issuer, now)

    refusal = Refusal(
        refusal_id=str(uuid.uuid4()),
        patient_id=patient,
        issuer_of_patient_id=issuer,
        declined_at=declined,
        reference=reference_text,
        note=_text(note, "note", MAX_TEXT_LENGTH, required=False),
        recorded_by=by,
        recorded_at=now,
    )
    await connection.execute(
        insert(patient_refusal).values(
            refusal_id=refusal.refusal_id,
            patient_id=patient,
            issuer_of_patient_id=issuer,
            declined_at=declined,
            reference=refusal.reference,
            note=refusal.note,
            recorded_by=by,
            recorded_at=now,
        )
    )
    await record_change(
        connection,
        EventType.PATIENT_RECORD,
        "refusal.record",
        event_action=EventAction.CREATE,
        patient_id=patient,
        issuer_of_patient_id=issuer,
        objects=[RecordObject("refusal", refusal.refusal_id, refusal.reference)],
        detail={"declined_at": periods.format_utc(declined)},
    )
    return refusal


async def _check_no_authorization_in_force(
    connection: AsyncConnection, patient_id: str, issuer: str, now: datetime.datetime
) -> None:
    authorization = patient_authorization.c
    rows = await connection.execute(
        select(authorization.authorization_id).where(
            authorization.patient_id == patient_id,
            authorization.issuer_of_patient_id == issuer,
            authorization.revoked_at.is_(None),
            authorization.ends_at > now,
        )
    )
    in_force = [row.authorization_id for row in rows]
    if in_force:
        raise Conflict(
            f"the patient has authorizations that have not ended ({', '.join(in_force)}); revoke them "
            "first, then record the refusal"
        )


async def list_refusals(
    connection: AsyncConnection, patient_id: str, issuer_of_patient_id: str | None = None
) -> list[Refusal]:
    """List a patient's refusals, oldest first; without an issuer, those of every issuer."""
    patient = _text(patient_id, "patient_id", MAX_PATIENT_ID_LENGTH, required=True)
    statement = select(patient_refusal).where(patient_refusal.c.patient_id == patient)
    if issuer_of_patient_id is not None:
        statement = statement.where(patient_refusal.c.issuer_of_patient_id == issuer_of_patient_id.strip())
    statement = statement.order_by(patient_refusal.c.declined_at, patient_refusal.c.refusal_key)
    return [_refusal(row) for row in await connection.execute(statement)]


async def get_refusal(connection: AsyncConnection, refusal_id: str) -> Refusal:
    row = (
        await connection.execute(
            select(patient_refusal).where(patient_refusal.c.refusal_id == refusal_id.strip())
        )
    ).first()
    if row is None:
        raise NotFound(f"no refusal with id {refusal_id.strip()!r}")
    return _refusal(row)


def _refusal(row: Any) -> Refusal:
    return Refusal(
        refusal_id=row.refusal_id,
        patient_id=row.patient_id,
        issuer_of_patient_id=row.issuer_of_patient_id,
        declined_at=row.declined_at,
        reference=row.reference,
        note=row.note,
        recorded_by=row.recorded_by,
        recorded_at=row.recorded_at,
    )
