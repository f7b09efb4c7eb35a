"""The sharing status of one study, and the sentence a radiologist may paste into its final report.

A study is available to external facilities now when an authorization covering it is in force
(started, not ended, not revoked). The status names that authorization (the one that ends last
when several are in force), the day availability ends, and whether that reaches twelve months
after the study. The statement is given only when both are true. Otherwise the status states why not,
so that a report template never documents an availability that does not exist.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from dicomweb_server.consent import periods
from dicomweb_server.consent.authorizations import Authorization, get_authorization
from dicomweb_server.consent.policy import covers_study
from dicomweb_server.consent.tables import patient_authorization
from dicomweb_server.errors import NotFound
from dicomweb_server.index.schema import series, study

STATEMENT = (
    "DATA AVAILABILITY: DICOM image data of this study are available to non-affiliated external "
    "healthcare facilities on a secure, media-free, reciprocally searchable basis, with the patient's "
    "authorization, through {last_day}, at least twelve months after the study."
)


@dataclass
class SharingStatus:
    study_instance_uid: str
    patient_id: str | None
    issuer_of_patient_id: str
    study_date: str | None
    modalities: list[str]
    required_until: datetime.datetime
    time_zone: ZoneInfo
    in_force: list[Authorization]
    covering: list[Authorization]
    now: datetime.datetime

    @property
    def under(self) -> Authorization | None:
        """The authorization in force that ends last."""
        return max(self.in_force, key=lambda item: item.ends_at, default=None)

    @property
    def available_now(self) -> bool:
        return bool(self.in_force)

    @property
    def reaches_twelve_months(self) -> bool:
        under = self.under
        return under is not None and under.ends_at >= self.required_until

    def last_day(self, instant: datetime.datetime) -> datetime.date:
        """Return the last local day an exclusive end includes."""
        return (instant - datetime.timedelta(microseconds=1)).astimezone(self.time_zone).date()

    def statement(self) -> str | None:
        under = self.under
        if under is None or not self.reaches_twelve_months:
            return None
        return STATEMENT.format(last_day=self.last_day(under.ends_at).isoformat())

    def withheld_because(self) -> str | None:
        """Say in one sentence why there is no statement, or None when there is one."""
        under = self.under
        if under is None:
            if any(item.revoked_at is not None for item in self.covering):
                return "No authorization covering this study is in force; the patient revoked theirs."
            return "No authorization covering this study is in force, so it is not available externally."
        if not self.reaches_twelve_months:
            return (
                f"The authorization in force ends after {self.last_day(under.ends_at).isoformat()}, before "
                f"twelve months after the study (through {self.last_day(self.required_until).isoformat()})."
            )
        return None

    def to_json(self) -> dict[str, Any]:
        under = self.under
        return {
            "study_instance_uid": self.study_instance_uid,
            "patient_id": self.patient_id,
            "issuer_of_patient_id": self.issuer_of_patient_id or None,
            "study_date": self.study_date,
            "modalities": self.modalities,
            "checked_at": periods.format_utc(self.now),
            "available_now": self.available_now,
            "authorization": under.to_json(self.now) if under else None,
            "available_until": periods.format_utc(under.ends_at) if under else None,
            "available_through_day": self.last_day(under.ends_at).isoformat() if under else None,
            "twelve_months_until": periods.format_utc(self.required_until),
            "twelve_months_through_day": self.last_day(self.required_until).isoformat(),
            "reaches_twelve_months": self.reaches_twelve_months,
            "statement": self.statement(),
            "statement_withheld_because": self.withheld_because(),
            "time_zone": self.time_zone.key,
        }


async def sharing_status(
    connection: AsyncConnection, study_instance_uid: str, time_zone: ZoneInfo, now: datetime.datetime
) -> SharingStatus:
    """Return the sharing status of a study at ``now``.

    Raises
    ------
    NotFound
        When the archive stores no study with that StudyInstanceUID.
    """
    row = (
        await connection.execute(
            select(
                study.c.study_key,
                study.c.study_instance_uid,
                study.c.patient_id,
                study.c.issuer_of_patient_id,
                study.c.study_date,
                study.c.created_at,
            ).where(study.c.study_instance_uid == study_instance_uid.strip())
        )
    ).first()
    if row is None:
        raise NotFound(f"no study with StudyInstanceUID {study_instance_uid.strip()!r} is stored")

    modalities = await connection.execute(
        select(series.c.modality).where(series.c.study_key == row.study_key).distinct()
    )
    covering = await _covering(connection, row.study_instance_uid)
    in_force = [item for item in covering if item.state(now) == "active"]
    day = periods.study_day(row.study_date, row.created_at, time_zone)
    return SharingStatus(
        study_instance_uid=row.study_instance_uid,
        patient_id=row.patient_id,
        issuer_of_patient_id=row.issuer_of_patient_id or "",
        study_date=row.study_date,
        modalities=sorted(item.modality for item in modalities if item.modality),
        required_until=periods.required_until(day, time_zone),
        time_zone=time_zone,
        in_force=in_force,
        covering=covering,
        now=now,
    )


async def _covering(connection: AsyncConnection, study_instance_uid: str) -> list[Authorization]:
    rows = await connection.execute(
        select(patient_authorization.c.authorization_id)
        .select_from(patient_authorization.join(study, covers_study()))
        .where(study.c.study_instance_uid == study_instance_uid)
        .order_by(patient_authorization.c.recorded_at)
    )
    return [await get_authorization(connection, item.authorization_id) for item in rows.all()]
