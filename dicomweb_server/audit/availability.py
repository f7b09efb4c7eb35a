"""Whether CT studies were made available to external facilities for twelve months: the G9340 report.

The quality measure behind HCPCS G9340 counts the final reports of CT studies that document the
availability of the study's DICOM data to non-affiliated external facilities. That availability
is on a secure, media-free, reciprocally searchable basis, with the patient's authorization, for
at least twelve months after the study. G9329 is the code of reports that do not document it.
A study's twelve months end at the end of the local day twelve calendar months after its
StudyDate (``periods.required_until``).

The report shows two counting modes, strict first:

- **strict**: the study counts (G9340) when an authorization covers it, started by the time
  of the report, ends no earlier than the twelve months, and was not revoked before they
  passed. Otherwise it is G9329 with the first reason that applies: ``revoked`` (an
  authorization covering it was revoked before the twelve months passed), ``ends too early``
  (the authorizations covering it end before), ``patient declined`` (a refusal of the patient
  is recorded) or ``no authorization``.
- **capability**: the study counts when the archive could share it once the patient
  authorizes: it has a PatientID an authorization can name, and at least one external
  organisation is registered to receive it. Otherwise the reason is ``no PatientID`` or
  ``no external organisation``. Stored studies are never deleted, so being stored is being
  available for twelve months.

A study belongs to the period by its StudyDate, or by the local day it was first stored when it
has none. The evidence of reciprocity counts, from the audit trail, the searches and retrievals
external organisations made of this archive in the period, and the searches of peer archives
this archive made for its users. Given the registered peers and the organisations they act as,
it also shows both directions for each peer: what the peer searched and retrieved here, and
what this archive's users searched and retrieved there.
"""

from __future__ import annotations

import datetime
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from dicomweb_server.audit.events import EventType, Outcome
from dicomweb_server.audit.spreadsheet import csv_text
from dicomweb_server.audit.tables import audit_event
from dicomweb_server.auth.tables import organisation
from dicomweb_server.consent import periods
from dicomweb_server.consent.policy import covers_study
from dicomweb_server.consent.tables import patient_authorization, patient_refusal
from dicomweb_server.index.schema import series, study

MET = "G9340"
NOT_MET = "G9329"
STRICT_REASONS = ("revoked", "ends too early", "patient declined", "no authorization")
CAPABILITY_REASONS = ("no PatientID", "no external organisation")
LOOKUP_CHUNK = 500
MAX_PERIOD_DAYS = 3660
CSV_COLUMNS = [
    "study_instance_uid",
    "patient_id",
    "issuer_of_patient_id",
    "accession_number",
    "study_date",
    "required_until",
    "strict_code",
    "strict_reason",
    "strict_authorization",
    "capability_code",
    "capability_reason",
]


@dataclass(frozen=True)
class Period:
    """Local days from ``first`` to ``last``, both included, in ``time_zone``."""

    first: datetime.date
    last: datetime.date
    time_zone: ZoneInfo

    @property
    def starts_at(self) -> datetime.datetime:
        return periods.start_of_local_day(self.first, self.time_zone)

    @property
    def ends_at(self) -> datetime.datetime:
        """The exclusive end: the local midnight after the last day."""
        return periods.start_of_local_day(self.last + datetime.timedelta(days=1), self.time_zone)

    def to_json(self) -> dict[str, Any]:
        return {"from": self.first.isoformat(), "to": self.last.isoformat(), "time_zone": self.time_zone.key}


def parse_period(first: str, last: str, time_zone: ZoneInfo) -> Period:
    """Parse the two days of a period, given as YYYY-MM-DD or YYYYMMDD.

    Raises
    ------
    ValueError
        When a day is malformed, the first is after the last, a day is outside
        ``periods.EARLIEST_DATE`` to ``periods.LATEST_DATE``, or the period exceeds ten years.
    """
    first_day = datetime.date.fromisoformat(_iso_day(periods.parse_study_date(first)))
    last_day = datetime.date.fromisoformat(_iso_day(periods.parse_study_date(last)))
    if first_day > last_day:
        raise ValueError(f"invalid period: from {first_day} is after to {last_day}")
    if first_day < periods.EARLIEST_DATE or last_day > periods.LATEST_DATE:
        raise ValueError(
            f"invalid period: {first_day} to {last_day} is outside the days the archive can report on; "
            f"give days from {periods.EARLIEST_DATE} to {periods.LATEST_DATE}"
        )
    if (last_day - first_day).days > MAX_PERIOD_DAYS:
        raise ValueError(f"invalid period: {first_day} to {last_day} is longer than ten years; split it")
    return Period(first_day, last_day, time_zone)


def _iso_day(dicom_date: str) -> str:
    return f"{dicom_date[:4]}-{dicom_date[4:6]}-{dicom_date[6:]}"


@dataclass(frozen=True)
class CoveringAuthorization:
    authorization_id: str
    starts_at: datetime.datetime
    ends_at: datetime.datetime
    revoked_at: datetime.datetime | None


@dataclass
class StudyStatus:
    """One CT study of the period and its status in both counting modes."""

    study_instance_uid: str
    patient_id: str | None
    issuer_of_patient_id: str
    accession_number: str | None
    study_date: str | None
    study_day: datetime.date
    required_until: datetime.datetime
    strict_code: str = NOT_MET
    strict_reason: str | None = None
    strict_authorization: str | None = None
    capability_code: str = NOT_MET
    capability_reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "study_instance_uid": self.study_instance_uid,
            "patient_id": self.patient_id,
            "issuer_of_patient_id": self.issuer_of_patient_id or None,
            "accession_number": self.accession_number,
            "study_date": self.study_date,
            "study_day": self.study_day.isoformat(),
            "required_until": periods.format_utc(self.required_until),
            "strict": {
                "code": self.strict_code,
                "met": self.strict_code == MET,
                "reason": self.strict_reason,
                "authorization": self.strict_authorization,
            },
            "capability": {
                "code": self.capability_code,
                "met": self.capability_code == MET,
                "reason": self.capability_reason,
            },
        }


@dataclass
class PeerReciprocity:
    """Both directions of the traffic with one peer archive in the period."""

    name: str
    acts_as: str | None
    searches_by_peer: int = 0
    retrievals_by_peer: int = 0
    searches_of_peer: int = 0
    searches_of_peer_answered: int = 0
    retrievals_from_peer: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "peer": self.name,
            "acts_as": self.acts_as,
            "searches_by_peer": self.searches_by_peer,
            "retrievals_by_peer": self.retrievals_by_peer,
            "searches_of_peer": self.searches_of_peer,
            "searches_of_peer_answered": self.searches_of_peer_answered,
            "retrievals_from_peer": self.retrievals_from_peer,
        }


@dataclass
class Reciprocity:
    """Counts from the audit trail that show searching works both ways in the period."""

    inbound_searches: int = 0
    inbound_retrievals: int = 0
    inbound_organisations: list[str] = field(default_factory=list)
    outbound_searches: int = 0
    outbound_searches_answered: int = 0
    outbound_retrievals: int = 0
    peers_searched: list[str] = field(default_factory=list)
    peers: list[PeerReciprocity] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "searches_by_external_organisations": self.inbound_searches,
            "retrievals_by_external_organisations": self.inbound_retrievals,
            "external_organisations": self.inbound_organisations,
            "searches_of_peers": self.outbound_searches,
            "searches_of_peers_answered": self.outbound_searches_answered,
            "retrievals_from_peers": self.outbound_retrievals,
            "peers_searched": self.peers_searched,
            "peers": [item.to_json() for item in self.peers],
        }


@dataclass
class AvailabilityReport:
    period: Period
    generated_at: datetime.datetime
    studies: list[StudyStatus]
    external_organisations: int
    reciprocity: Reciprocity

    def totals(self, mode: str) -> dict[str, Any]:
        codes = [getattr(item, f"{mode}_code") for item in self.studies]
        reasons = Counter(getattr(item, f"{mode}_reason") for item in self.studies)
        met = codes.count(MET)
        known = STRICT_REASONS if mode == "strict" else CAPABILITY_REASONS
        return {
            "studies": len(codes),
            "met": met,
            "not_met": len(codes) - met,
            "not_met_by_reason": {reason: reasons.get(reason, 0) for reason in known},
            "performance_rate": round(met / len(codes), 4) if codes else None,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "measure": "CT studies available to non-affiliated external facilities for twelve months "
            f"with patient authorization ({MET} met, {NOT_MET} not met)",
            "period": self.period.to_json(),
            "generated_at": periods.format_utc(self.generated_at),
            "modes": {"strict": self.totals("strict"), "capability": self.totals("capability")},
            "external_organisations": self.external_organisations,
            "reciprocity": self.reciprocity.to_json(),
            "studies": [item.to_json() for item in self.studies],
        }

    def to_csv(self) -> str:
        """Write one row per CT study."""
        rows = [
            [
                item["study_instance_uid"],
                item["patient_id"] or "",
                item["issuer_of_patient_id"] or "",
                item["accession_number"] or "",
                item["study_date"] or "",
                item["required_until"],
                item["strict"]["code"],
                item["strict"]["reason"] or "",
                item["strict"]["authorization"] or "",
                item["capability"]["code"],
                item["capability"]["reason"] or "",
            ]
            for item in self.to_json()["studies"]
        ]
        return csv_text(CSV_COLUMNS, rows)


async def availability_report(
    connection: AsyncConnection,
    period: Period,
    now: datetime.datetime,
    peers: Mapping[str, str | None] | None = None,
) -> AvailabilityReport:
    """Build the availability report of the CT studies of ``period``, as of ``now``.

    ``peers`` maps the name of each registered peer to the organisation it acts as when it
    queries this archive, or to None. The reciprocity then shows each peer.
    """
    studies = await _ct_studies(connection, period)
    covering = await _covering_authorizations(connection, [item.study_instance_uid for item in studies])
    refused = await _refused_patients(connection, studies, now)
    external = await _count_external_organisations(connection, now)
    for item in studies:
        _classify_strict(item, covering.get(item.study_instance_uid, []), refused, now)
        _classify_capability(item, external)
    reciprocity = await _reciprocity(connection, period, peers or {})
    return AvailabilityReport(period, now, studies, external, reciprocity)


def _has_ct_series() -> Any:
    return exists().where(series.c.study_key == study.c.study_key, series.c.modality == "CT")


async def _ct_studies(connection: AsyncConnection, period: Period) -> list[StudyStatus]:
    first, last = period.first.strftime("%Y%m%d"), period.last.strftime("%Y%m%d")
    in_period = or_(
        study.c.study_date.between(first, last),
        and_(
            or_(study.c.study_date.is_(None), study.c.study_date == ""),
            study.c.created_at >= period.starts_at,
            study.c.created_at < period.ends_at,
        ),
    )
    rows = await connection.execute(
        select(
            study.c.study_instance_uid,
            study.c.patient_id,
            study.c.issuer_of_patient_id,
            study.c.accession_number,
            study.c.study_date,
            study.c.created_at,
        )
        .where(in_period, _has_ct_series())
        .order_by(study.c.study_date, study.c.study_instance_uid)
    )
    found = []
    for row in rows:
        day = periods.study_day(row.study_date, row.created_at, period.time_zone)
        if not period.first <= day <= period.last:
            continue
        found.append(
            StudyStatus(
                study_instance_uid=row.study_instance_uid,
                patient_id=row.patient_id or None,
                issuer_of_patient_id=row.issuer_of_patient_id or "",
                accession_number=row.accession_number,
                study_date=row.study_date,
                study_day=day,
                required_until=periods.required_until(day, period.time_zone),
            )
        )
    return found


async def _covering_authorizations(
    connection: AsyncConnection, uids: list[str]
) -> dict[str, list[CoveringAuthorization]]:
    """Return every authorization covering each study, whatever its state."""
    found: dict[str, list[CoveringAuthorization]] = {}
    authorization = patient_authorization.c
    for start in range(0, len(uids), LOOKUP_CHUNK):
        rows = await connection.execute(
            select(
                study.c.study_instance_uid,
                authorization.authorization_id,
                authorization.starts_at,
                authorization.ends_at,
                authorization.revoked_at,
            )
            .select_from(patient_authorization.join(study, covers_study()))
            .where(study.c.study_instance_uid.in_(uids[start : start + LOOKUP_CHUNK]))
            .order_by(authorization.recorded_at)
        )
        for row in rows:
            found.setdefault(row.study_instance_uid, []).append(
                CoveringAuthorization(row.authorization_id, row.starts_at, row.ends_at, row.revoked_at)
            )
    return found


async def _refused_patients(
    connection: AsyncConnection, studies: list[StudyStatus], now: datetime.datetime
) -> set[tuple[str, str]]:
    patients = sorted({(item.patient_id, item.issuer_of_patient_id) for item in studies if item.patient_id})
    refused: set[tuple[str, str]] = set()
    for start in range(0, len(patients), LOOKUP_CHUNK):
        chunk = [item[0] for item in patients[start : start + LOOKUP_CHUNK]]
        rows = await connection.execute(
            select(patient_refusal.c.patient_id, patient_refusal.c.issuer_of_patient_id).where(
                patient_refusal.c.patient_id.in_(chunk), patient_refusal.c.declined_at <= now
            )
        )
        refused |= {(row.patient_id, row.issuer_of_patient_id) for row in rows}
    return refused


async def _count_external_organisations(connection: AsyncConnection, now: datetime.datetime) -> int:
    statement = select(func.count()).where(
        organisation.c.affiliated.is_(False),
        or_(organisation.c.deleted_at.is_(None), organisation.c.deleted_at > now),
    )
    return int((await connection.execute(statement)).scalar_one())


def _classify_strict(
    item: StudyStatus,
    covering: list[CoveringAuthorization],
    refused: set[tuple[str, str]],
    now: datetime.datetime,
) -> None:
    required = item.required_until
    started = [found for found in covering if found.starts_at <= now]
    standing = [found for found in started if found.revoked_at is None or found.revoked_at >= required]
    qualifying = [found for found in standing if found.ends_at >= required]
    if qualifying:
        item.strict_code, item.strict_authorization = MET, qualifying[-1].authorization_id
        return
    item.strict_code = NOT_MET
    if any(found.revoked_at is not None and found.revoked_at < required for found in started):
        item.strict_reason = "revoked"
    elif standing:
        item.strict_reason = "ends too early"
    elif item.patient_id and (item.patient_id, item.issuer_of_patient_id) in refused:
        item.strict_reason = "patient declined"
    else:
        item.strict_reason = "no authorization"


def _classify_capability(item: StudyStatus, external_organisations: int) -> None:
    if not item.patient_id:
        item.capability_code, item.capability_reason = NOT_MET, "no PatientID"
    elif external_organisations == 0:
        item.capability_code, item.capability_reason = NOT_MET, "no external organisation"
    else:
        item.capability_code, item.capability_reason = MET, None


async def _reciprocity(
    connection: AsyncConnection, period: Period, peers: Mapping[str, str | None]
) -> Reciprocity:
    event = audit_event.c
    in_period = and_(event.event_time >= period.starts_at, event.event_time < period.ends_at)
    succeeded = event.outcome == int(Outcome.SUCCESS)
    retrieval = and_(
        event.event_type.in_([EventType.BEGIN_TRANSFERRING, EventType.INSTANCES_ACCESSED]),
        event.action.like("Retrieve%"),
    )
    result = Reciprocity()

    inbound = await connection.execute(
        select(event.organisation, event.event_type, func.count().label("requests"))
        .where(
            in_period,
            event.external.is_(True),
            succeeded,
            or_(event.event_type == EventType.QUERY, retrieval),
        )
        .group_by(event.organisation, event.event_type)
    )
    searches_by: Counter[str] = Counter()
    retrievals_by: Counter[str] = Counter()
    for row in inbound:
        counter = searches_by if row.event_type == EventType.QUERY else retrievals_by
        counter[row.organisation or ""] += row.requests
    result.inbound_searches = sum(searches_by.values())
    result.inbound_retrievals = sum(retrievals_by.values())
    result.inbound_organisations = sorted(name for name in searches_by | retrievals_by if name)

    outbound = await connection.execute(
        select(event.event_type, event.outcome, event.content).where(
            in_period, event.event_type.in_([EventType.FEDERATED_QUERY, EventType.FEDERATED_RETRIEVE])
        )
    )
    by_peer = {name: PeerReciprocity(name, acts_as) for name, acts_as in peers.items()}
    for row in outbound:
        answered = row.outcome == int(Outcome.SUCCESS)
        name = orjson.loads(row.content).get("peer") or ""
        # A peer removed since is still shown, without the organisation it acted as.
        traffic = by_peer.setdefault(name, PeerReciprocity(name, None)) if name else PeerReciprocity("", None)
        if row.event_type == EventType.FEDERATED_QUERY:
            result.outbound_searches += 1
            result.outbound_searches_answered += answered
            traffic.searches_of_peer += 1
            traffic.searches_of_peer_answered += answered
        elif answered:
            result.outbound_retrievals += 1
            traffic.retrievals_from_peer += 1
    result.peers_searched = sorted(name for name, item in by_peer.items() if item.searches_of_peer)

    for item in by_peer.values():
        if item.acts_as:
            item.searches_by_peer = searches_by[item.acts_as]
            item.retrievals_by_peer = retrievals_by[item.acts_as]
    result.peers = [by_peer[name] for name in sorted(by_peer)]
    return result
