"""Patient authorizations: record, list, show and revoke them, and keep their default end current.

An authorization names the patient (PatientID with IssuerOfPatientID) and what it covers: all
the patient's studies, listed StudyInstanceUIDs, or a StudyDate range. It names who may receive
it (named external organisations, or any external organisation), a purpose, where the signed
form is kept, who recorded it and when, and when it starts and ends.

Without an end chosen by the patient, it ends twelve months after the latest covered study or
twelve months after it starts, whichever is later (see ``periods.default_end``); each stored
study it covers moves that end, in the transaction that stores the study. An end the patient
chose is kept, and ``meets_twelve_months`` records whether it still reaches twelve months after
every covered study. A revoked authorization is never active again; a new one is a new record.
"""

from __future__ import annotations

import datetime
import functools
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dicomweb_server.audit import EventAction, EventType, RecordObject, StudyInvolved, record_change
from dicomweb_server.auth.organisations import Organisation, get_organisation
from dicomweb_server.auth.tables import organisation
from dicomweb_server.consent import periods
from dicomweb_server.consent.policy import covers_study
from dicomweb_server.consent.tables import authorization_recipient, authorization_study, patient_authorization
from dicomweb_server.dicom.uids import check_uid
from dicomweb_server.errors import Conflict, InvalidRequest, NotFound
from dicomweb_server.index.schema import study

logger = logging.getLogger(__name__)

MAX_TEXT_LENGTH = 2000
MAX_PATIENT_ID_LENGTH = 64
MAX_LISTED_STUDIES = 1000


@dataclass(frozen=True)
class NewAuthorization:
    """The fields a person records from a signed authorization, checked by :func:`record_authorization`.

    ``starts_at`` defaults to the time of recording. ``ends_at`` is the end the patient chose
    (exclusive); without it the default end applies.
    """

    patient_id: str
    purpose: str
    reference: str
    issuer_of_patient_id: str = ""
    organisations: tuple[str, ...] = ()
    any_external: bool = False
    study_instance_uids: tuple[str, ...] = ()
    study_date_from: str | None = None
    study_date_to: str | None = None
    starts_at: datetime.datetime | None = None
    ends_at: datetime.datetime | None = None


@dataclass(frozen=True)
class Authorization:
    """A recorded authorization, as the admin API and the CLI show it."""

    authorization_id: str
    patient_id: str
    issuer_of_patient_id: str
    coverage: str
    study_date_from: str | None
    study_date_to: str | None
    any_external: bool
    purpose: str
    reference: str
    recorded_by: str
    recorded_at: datetime.datetime
    starts_at: datetime.datetime
    ends_at: datetime.datetime
    time_zone: str
    end_chosen_by_patient: bool
    meets_twelve_months: bool
    updated_at: datetime.datetime
    revoked_at: datetime.datetime | None
    revoked_by: str | None
    revocation_reason: str | None
    organisations: list[str] = field(default_factory=list)
    study_instance_uids: list[str] = field(default_factory=list)
    deleted_organisations: dict[str, datetime.datetime] = field(default_factory=dict)
    """Recipients deleted after the authorization was recorded, with the time of deletion. An
    organisation registered again under the same name is another organisation, so the authorization
    does not name it."""

    def state(self, now: datetime.datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if now < self.starts_at:
            return "not started"
        if now >= self.ends_at:
            return "ended"
        return "active"

    def to_json(self, now: datetime.datetime) -> dict[str, Any]:
        zone = ZoneInfo(self.time_zone)
        return {
            "id": self.authorization_id,
            "state": self.state(now),
            "patient_id": self.patient_id,
            "issuer_of_patient_id": self.issuer_of_patient_id or None,
            "coverage": self.coverage,
            "study_instance_uids": self.study_instance_uids,
            "study_date_from": self.study_date_from,
            "study_date_to": self.study_date_to,
            "any_external": self.any_external,
            "organisations": self.organisations,
            "deleted_organisations": {
                name: periods.format_utc(deleted_at)
                for name, deleted_at in self.deleted_organisations.items()
            },
            "purpose": self.purpose,
            "reference": self.reference,
            "recorded_by": self.recorded_by,
            "recorded_at": periods.format_utc(self.recorded_at),
            "starts_at": periods.format_utc(self.starts_at),
            "ends_at": periods.format_utc(self.ends_at),
            "starts_at_local": periods.format_local(self.starts_at, zone),
            "ends_at_local": periods.format_local(self.ends_at, zone),
            "time_zone": self.time_zone,
            "end_chosen_by_patient": self.end_chosen_by_patient,
            "meets_twelve_months": self.meets_twelve_months,
            "updated_at": periods.format_utc(self.updated_at),
            "revoked_at": periods.format_utc(self.revoked_at) if self.revoked_at else None,
            "revoked_by": self.revoked_by,
            "revocation_reason": self.revocation_reason,
        }


def _required_text(value: str, name: str, maximum: int = MAX_TEXT_LENGTH) -> str:
    cleaned = value.strip() if isinstance(value, str) else ""
    if not cleaned:
        raise InvalidRequest(f"missing {name}: give it as a non-empty string")
    if len(cleaned) > maximum:
        raise InvalidRequest(f"invalid {name}: {len(cleaned)} characters, the maximum is {maximum}")
    return cleaned


def _coverage(request: NewAuthorization) -> tuple[str, list[str], str | None, str | None]:
    """Return the coverage kind, the listed studies and the date range, checked."""
    has_dates = request.study_date_from is not None or request.study_date_to is not None
    if request.study_instance_uids and has_dates:
        raise InvalidRequest("an authorization covers listed studies or a date range, not both; give one")
    if request.study_instance_uids:
        uids = sorted(set(request.study_instance_uids))
        if len(uids) > MAX_LISTED_STUDIES:
            raise InvalidRequest(
                f"too many studies listed ({len(uids)}); the maximum is {MAX_LISTED_STUDIES}"
            )
        for uid in uids:
            check = check_uid(uid)
            if not check.usable:
                raise InvalidRequest(f"invalid StudyInstanceUID {uid!r}: {check.reason}")
        return "studies", uids, None, None
    if has_dates:
        if request.study_date_from is None or request.study_date_to is None:
            raise InvalidRequest("a date range needs both study_date_from and study_date_to")
        try:
            low = periods.parse_study_date(request.study_date_from)
            high = periods.parse_study_date(request.study_date_to)
        except ValueError as error:
            raise InvalidRequest(str(error)) from None
        if low > high:
            raise InvalidRequest(f"invalid date range: study_date_from {low} is after study_date_to {high}")
        return "date_range", [], low, high
    return "all", [], None, None


async def _recipients(connection: AsyncConnection, request: NewAuthorization) -> list[Organisation]:
    if request.any_external and request.organisations:
        raise InvalidRequest("name the receiving organisations or choose any external organisation, not both")
    if not request.any_external and not request.organisations:
        raise InvalidRequest(
            "missing recipient: name the receiving organisations or choose any external organisation"
        )
    recipients = [await get_organisation(connection, name) for name in dict.fromkeys(request.organisations)]
    for recipient in recipients:
        if recipient.affiliated:
            raise InvalidRequest(
                f"the organisation {recipient.name!r} is affiliated and sees every study without an "
                "authorization; name external organisations only"
            )
    return recipients


async def record_authorization(
    connection: AsyncConnection,
    request: NewAuthorization,
    *,
    time_zone: ZoneInfo,
    by: str,
    now: datetime.datetime,
) -> Authorization:
    """Check and record a new authorization in the caller's transaction.

    Raises
    ------
    InvalidRequest
        When a field is missing or invalid, the end is not after the start, or a listed study
        belongs to another patient.
    NotFound
        When a named organisation is not registered.
    """
    patient_id = _required_text(request.patient_id, "patient_id", MAX_PATIENT_ID_LENGTH)
    issuer = (request.issuer_of_patient_id or "").strip()
    purpose = _required_text(request.purpose, "purpose")
    reference = _required_text(request.reference, "reference (where the signed authorization is kept)")
    coverage, uids, date_from, date_to = _coverage(request)
    recipients = await _recipients(connection, request)
    await _check_listed_studies(connection, uids, patient_id, issuer)

    starts_at = request.starts_at or now
    record_id = str(uuid.uuid4())
    values = {
        "authorization_id": record_id,
        "patient_id": patient_id,
        "issuer_of_patient_id": issuer,
        "coverage": coverage,
        "study_date_from": date_from,
        "study_date_to": date_to,
        "any_external": request.any_external,
        "purpose": purpose,
        "reference": reference,
        "recorded_by": by,
        "recorded_at": now,
        "starts_at": starts_at,
        "time_zone": time_zone.key,
        "updated_at": now,
    }
    result = await connection.execute(
        insert(patient_authorization)
        .values(**values, ends_at=starts_at, end_chosen_by_patient=False, meets_twelve_months=False)
        .returning(patient_authorization.c.authorization_key)
    )
    key = result.scalar_one()
    if uids:
        await connection.execute(
            insert(authorization_study),
            [{"authorization_key": key, "study_instance_uid": uid} for uid in uids],
        )
    if recipients:
        await connection.execute(
            insert(authorization_recipient),
            [{"authorization_key": key, "organisation_key": recipient.key} for recipient in recipients],
        )

    required = periods.default_end(
        starts_at, await _covered_study_days(connection, key, time_zone), time_zone
    )
    ends_at = request.ends_at or required
    if ends_at <= starts_at:
        raise InvalidRequest(
            f"invalid end {periods.format_local(ends_at, time_zone)}: it is not after the start "
            f"{periods.format_local(starts_at, time_zone)}"
        )
    await connection.execute(
        update(patient_authorization)
        .where(patient_authorization.c.authorization_key == key)
        .values(
            ends_at=ends_at,
            end_chosen_by_patient=request.ends_at is not None,
            meets_twelve_months=ends_at >= required,
        )
    )
    logger.info("Consent: recorded authorization %s (covers %s)", record_id, coverage)
    recorded = await get_authorization(connection, record_id)
    await _record_change(connection, recorded, "authorization.record", EventAction.CREATE)
    return recorded


async def _check_listed_studies(
    connection: AsyncConnection, uids: list[str], patient_id: str, issuer: str
) -> None:
    if not uids:
        return
    rows = await connection.execute(
        select(study.c.study_instance_uid, study.c.patient_id, study.c.issuer_of_patient_id).where(
            study.c.study_instance_uid.in_(uids)
        )
    )
    for row in rows:
        if (row.patient_id, row.issuer_of_patient_id or "") != (patient_id, issuer):
            raise InvalidRequest(
                f"the study {row.study_instance_uid} belongs to another patient (PatientID or "
                "IssuerOfPatientID differ); list only studies of the authorizing patient"
            )


async def _covered_study_days(
    connection: AsyncConnection, authorization_key: int, time_zone: ZoneInfo
) -> list[datetime.date]:
    rows = await connection.execute(
        select(study.c.study_date, study.c.created_at)
        .select_from(patient_authorization.join(study, covers_study()))
        .where(patient_authorization.c.authorization_key == authorization_key)
    )
    return [periods.study_day(row.study_date, row.created_at, time_zone) for row in rows]


async def _find(connection: AsyncConnection, *conditions: Any) -> list[Authorization]:
    rows = (
        await connection.execute(
            select(patient_authorization)
            .where(*conditions)
            .order_by(patient_authorization.c.recorded_at, patient_authorization.c.authorization_key)
        )
    ).all()
    keys = [row.authorization_key for row in rows]
    listed: dict[int, list[str]] = {key: [] for key in keys}
    named: dict[int, list[str]] = {key: [] for key in keys}
    deleted: dict[int, dict[str, datetime.datetime]] = {key: {} for key in keys}
    if keys:
        for key, uid in await connection.execute(
            select(authorization_study.c.authorization_key, authorization_study.c.study_instance_uid)
            .where(authorization_study.c.authorization_key.in_(keys))
            .order_by(authorization_study.c.study_instance_uid)
        ):
            listed[key].append(uid)
        for key, name, deleted_at in await connection.execute(
            select(
                authorization_recipient.c.authorization_key, organisation.c.name, organisation.c.deleted_at
            )
            .select_from(
                authorization_recipient.join(
                    organisation,
                    authorization_recipient.c.organisation_key == organisation.c.organisation_key,
                )
            )
            .where(authorization_recipient.c.authorization_key.in_(keys))
            .order_by(organisation.c.name)
        ):
            named[key].append(name)
            if deleted_at is not None:
                deleted[key][name] = deleted_at
    return [
        _authorization(
            row, named[row.authorization_key], listed[row.authorization_key], deleted[row.authorization_key]
        )
        for row in rows
    ]


def _authorization(
    row: Any, organisations: list[str], uids: list[str], deleted: dict[str, datetime.datetime] | None = None
) -> Authorization:
    return Authorization(
        authorization_id=row.authorization_id,
        patient_id=row.patient_id,
        issuer_of_patient_id=row.issuer_of_patient_id,
        coverage=row.coverage,
        study_date_from=row.study_date_from,
        study_date_to=row.study_date_to,
        any_external=bool(row.any_external),
        purpose=row.purpose,
        reference=row.reference,
        recorded_by=row.recorded_by,
        recorded_at=row.recorded_at,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        time_zone=row.time_zone,
        end_chosen_by_patient=bool(row.end_chosen_by_patient),
        meets_twelve_months=bool(row.meets_twelve_months),
        updated_at=row.updated_at,
        revoked_at=row.revoked_at,
        revoked_by=row.revoked_by,
        revocation_reason=row.revocation_reason,
        organisations=organisations,
        study_instance_uids=uids,
        deleted_organisations=deleted or {},
    )


async def get_authorization(connection: AsyncConnection, authorization_id: str) -> Authorization:
    """Return one authorization by its id, or raise NotFound."""
    found = await _find(connection, patient_authorization.c.authorization_id == authorization_id.strip())
    if not found:
        raise NotFound(f"no authorization with id {authorization_id.strip()!r}")
    return found[0]


async def list_authorizations(
    connection: AsyncConnection, patient_id: str, issuer_of_patient_id: str | None = None
) -> list[Authorization]:
    """List a patient's authorizations, oldest first; without an issuer, those of every issuer."""
    conditions = [patient_authorization.c.patient_id == _required_text(patient_id, "patient_id")]
    if issuer_of_patient_id is not None:
        conditions.append(patient_authorization.c.issuer_of_patient_id == issuer_of_patient_id.strip())
    return await _find(connection, *conditions)


async def revoke_authorization(
    connection: AsyncConnection, authorization_id: str, *, reason: str, by: str, now: datetime.datetime
) -> Authorization:
    """Revoke an authorization from ``now`` on, in the caller's transaction.

    Raises
    ------
    NotFound
        When no authorization has that id.
    Conflict
        When it was revoked already; the first revocation is kept.
    """
    reason_text = _required_text(reason, "reason (why the authorization is revoked)")
    found = await get_authorization(connection, authorization_id)
    if found.revoked_at is not None:
        raise Conflict(
            f"the authorization {found.authorization_id} was revoked already, at "
            f"{periods.format_utc(found.revoked_at)}"
        )
    await connection.execute(
        update(patient_authorization)
        .where(
            patient_authorization.c.authorization_id == found.authorization_id,
            patient_authorization.c.revoked_at.is_(None),
        )
        .values(revoked_at=now, revoked_by=by, revocation_reason=reason_text, updated_at=now)
    )
    logger.info("Consent: revoked authorization %s", found.authorization_id)
    revoked = await get_authorization(connection, found.authorization_id)
    await _record_change(connection, revoked, "authorization.revoke", EventAction.UPDATE)
    return revoked


@functools.cache
def _authorizations_of_stored_study() -> Select[Any]:
    """Build the look-up of the authorizations that cover a study.

    It runs for every stored instance, so it is built once: building it took about as much CPU as
    running it.
    """
    return (
        select(
            patient_authorization.c.authorization_key,
            patient_authorization.c.authorization_id,
            patient_authorization.c.ends_at,
            patient_authorization.c.time_zone,
            patient_authorization.c.end_chosen_by_patient,
            patient_authorization.c.meets_twelve_months,
            study.c.study_date,
            study.c.created_at,
        )
        .select_from(patient_authorization.join(study, covers_study()))
        .where(
            study.c.study_instance_uid == bindparam("study_instance_uid"),
            patient_authorization.c.revoked_at.is_(None),
            patient_authorization.c.ends_at > bindparam("now"),
        )
    )


async def extend_for_study(
    connection: AsyncConnection, study_instance_uid: str, now: datetime.datetime
) -> None:
    """Move the default end of the authorizations that cover a newly stored study.

    Called in the transaction that stores the study, so an authorization is never read with an
    end that misses a study already stored. An end the patient chose is kept; it is marked as not
    meeting the twelve months when this study needs a later one. Authorizations that have
    ended or were revoked are left alone: a new study does not bring them back.
    """
    rows = (
        await connection.execute(
            _authorizations_of_stored_study(), {"study_instance_uid": study_instance_uid, "now": now}
        )
    ).all()
    for row in rows:
        zone = ZoneInfo(row.time_zone)
        needed = periods.required_until(periods.study_day(row.study_date, row.created_at, zone), zone)
        if needed <= row.ends_at:
            continue
        if not row.end_chosen_by_patient:
            changes: dict[str, Any] = {"ends_at": needed}
            logger.info("Consent: extended authorization %s for a new study", row.authorization_id)
        elif row.meets_twelve_months:
            changes = {"meets_twelve_months": False}
        else:
            continue
        await connection.execute(
            update(patient_authorization)
            .where(patient_authorization.c.authorization_key == row.authorization_key)
            .values(**changes, updated_at=now)
        )
        changed = await get_authorization(connection, row.authorization_id)
        await _record_change(
            connection,
            changed,
            "authorization.extend",
            EventAction.UPDATE,
            studies=[StudyInvolved(study_instance_uid)],
            detail={
                "previous_ends_at": periods.format_utc(row.ends_at),
                "trigger": "a covered study was stored",
            },
        )


async def _record_change(
    connection: AsyncConnection,
    authorization: Authorization,
    action: str,
    event_action: EventAction,
    *,
    studies: list[StudyInvolved] | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Record a change of an authorization in the audit trail, in the transaction that makes it."""
    await record_change(
        connection,
        EventType.PATIENT_RECORD,
        action,
        event_action=event_action,
        patient_id=authorization.patient_id,
        issuer_of_patient_id=authorization.issuer_of_patient_id,
        purpose=authorization.purpose,
        authorizations=[authorization.authorization_id],
        studies=studies or [],
        objects=[RecordObject("authorization", authorization.authorization_id, authorization.reference)],
        detail={
            **(detail or {}),
            "coverage": authorization.coverage,
            "ends_at": periods.format_utc(authorization.ends_at),
            "meets_twelve_months": authorization.meets_twelve_months,
            "revoked_at": periods.format_utc(authorization.revoked_at) if authorization.revoked_at else None,
        },
    )
