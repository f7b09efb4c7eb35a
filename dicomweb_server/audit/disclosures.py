"""The accounting of disclosures of one patient: who outside the archive received their data, and why.

Every request by which an external requester received patient data (search results, metadata,
rendered images, instances, frames) has a ``data-export`` entry in the trail, written before
the data left. The accounting lists those of one patient over a period, oldest first, with the
date, the receiving organisation and requester, what was disclosed (the kind of data and each
study: date, modalities, description, accession, instance count, bytes sent), the purpose, and
what allowed it (the authorizations, or an emergency access). The summary groups repeated
disclosures to one organisation for one purpose: first and last date and their number, as
45 CFR 164.528(b)(3) allows an accounting to present them.

Disclosures made under an authorization are exempt from the HIPAA accounting (164.528(a)(1)(iv));
they are listed all the same, each with its legal basis. A practice can then give either the
legal minimum or the full list of who received the patient's images.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from dicomweb_server.audit.availability import Period
from dicomweb_server.audit.events import EventType, parse_utc
from dicomweb_server.audit.spreadsheet import csv_text
from dicomweb_server.audit.tables import audit_event, audit_event_study
from dicomweb_server.consent import periods

LOOKUP_CHUNK = 500

KINDS = (
    ("SearchFor", "search results (study attributes)"),
    ("federated search", "search results (study attributes)"),
    ("Metadata", "metadata (all attributes, no pixel data)"),
    ("Rendered", "rendered images"),
    ("Thumbnail", "thumbnail images"),
    ("RetrieveFrames", "frames (pixel data)"),
    ("RetrieveBulkdata", "bulk data (pixel data or other large values)"),
    ("Retrieve", "DICOM instances (images)"),
)


def kind_of(action: str) -> str:
    """Describe what a disclosing request sent, from its action (RetrieveStudyMetadata, SearchForStudies)."""
    for marker, kind in KINDS:
        if marker in action:
            return kind
    return action


@dataclass
class Disclosure:
    """One request by which an external requester received data of the patient."""

    event_id: str
    request_id: str | None
    time: datetime.datetime
    organisation: str | None
    requester: str
    kind: str
    studies: list[dict[str, Any]]
    instances: int | None
    bytes_sent: int | None
    purpose: str | None
    authorizations: list[str]
    emergency_accesses: list[str]
    completed: bool | None = None

    @property
    def legal_basis(self) -> str:
        if self.authorizations:
            return "authorization"
        if self.emergency_accesses:
            return "emergency access"
        return "unknown"

    def to_json(self, time_zone: Any) -> dict[str, Any]:
        return {
            "date": periods.format_utc(self.time),
            "local_date": self.time.astimezone(time_zone).date().isoformat(),
            "organisation": self.organisation,
            "requester": self.requester,
            "disclosed": self.kind,
            "studies": self.studies,
            "instances": self.instances,
            "bytes": self.bytes_sent,
            "transfer_completed": self.completed,
            "purpose": self.purpose,
            "legal_basis": self.legal_basis,
            "authorizations": self.authorizations,
            "emergency_accesses": self.emergency_accesses,
            "event_id": self.event_id,
            "request_id": self.request_id,
        }


@dataclass
class Accounting:
    patient_id: str
    issuer_of_patient_id: str | None
    period: Period
    generated_at: datetime.datetime
    disclosures: list[Disclosure] = field(default_factory=list)

    def summary(self) -> list[dict[str, Any]]:
        groups: dict[tuple[str | None, str | None], list[Disclosure]] = {}
        for item in self.disclosures:
            groups.setdefault((item.organisation, item.purpose), []).append(item)
        return [
            {
                "organisation": organisation,
                "purpose": purpose,
                "disclosures": len(items),
                "first": periods.format_utc(items[0].time),
                "last": periods.format_utc(items[-1].time),
            }
            for (organisation, purpose), items in groups.items()
        ]

    def to_json(self) -> dict[str, Any]:
        zone = self.period.time_zone
        return {
            "patient_id": self.patient_id,
            "issuer_of_patient_id": self.issuer_of_patient_id,
            "period": self.period.to_json(),
            "generated_at": periods.format_utc(self.generated_at),
            "disclosures": [item.to_json(zone) for item in self.disclosures],
            "summary": self.summary(),
        }

    def to_csv(self) -> str:
        """Write one row per disclosed study of each disclosure."""
        zone = self.period.time_zone
        rows = []
        for item in self.disclosures:
            row = item.to_json(zone)
            for disclosed in item.studies:
                rows.append(
                    [
                        row["date"],
                        row["local_date"],
                        row["organisation"] or "",
                        row["requester"],
                        row["disclosed"],
                        disclosed["study_instance_uid"],
                        disclosed.get("study_date") or "",
                        " ".join(disclosed.get("modalities") or []),
                        disclosed.get("study_description") or "",
                        disclosed.get("accession_number") or "",
                        "" if disclosed.get("instances") is None else disclosed["instances"],
                        "" if row["bytes"] is None else row["bytes"],
                        row["purpose"] or "",
                        row["legal_basis"],
                        " ".join(row["authorizations"] + row["emergency_accesses"]),
                        row["event_id"],
                    ]
                )
        return csv_text(CSV_COLUMNS, rows)


CSV_COLUMNS = [
    "date",
    "local_date",
    "organisation",
    "requester",
    "disclosed",
    "study_instance_uid",
    "study_date",
    "modalities",
    "study_description",
    "accession_number",
    "instances",
    "bytes",
    "purpose",
    "legal_basis",
    "authorizations",
    "event_id",
]


async def account_disclosures(
    connection: AsyncConnection,
    patient_id: str,
    issuer_of_patient_id: str | None,
    period: Period,
    now: datetime.datetime,
) -> Accounting:
    """List the disclosures of one patient's data in ``period``; without an issuer, under any issuer."""
    accounting = Accounting(patient_id, issuer_of_patient_id, period, now)
    named = select(audit_event_study.c.sequence).where(audit_event_study.c.patient_id == patient_id)
    if issuer_of_patient_id is not None:
        named = named.where(audit_event_study.c.issuer_of_patient_id == issuer_of_patient_id)
    rows = await connection.execute(
        select(audit_event.c.content)
        .where(
            audit_event.c.event_type == EventType.DATA_EXPORT,
            audit_event.c.event_time >= period.starts_at,
            audit_event.c.event_time < period.ends_at,
            audit_event.c.sequence.in_(named),
        )
        .order_by(audit_event.c.event_time, audit_event.c.sequence)
    )
    for row in rows:
        content = orjson.loads(row.content)
        accounting.disclosures.append(_disclosure(content, patient_id, issuer_of_patient_id))
    await _add_transfer_ends(connection, accounting.disclosures)
    return accounting


def _disclosure(content: dict[str, Any], patient_id: str, issuer: str | None) -> Disclosure:
    studies = [
        {
            key: item.get(key)
            for key in (
                "study_instance_uid",
                "study_date",
                "modalities",
                "study_description",
                "accession_number",
                "instances",
            )
        }
        for item in content["studies"]
        if item["patient_id"] == patient_id and (issuer is None or item["issuer_of_patient_id"] == issuer)
    ]
    counts = [item["instances"] for item in studies if item["instances"] is not None]
    return Disclosure(
        event_id=content["event_id"],
        request_id=content["request_id"],
        time=parse_utc(content["event_time"]),
        organisation=content["requester"]["organisation"],
        requester=content["requester"]["subject"],
        kind=kind_of(content["action"]),
        studies=studies,
        instances=sum(counts) if counts else None,
        bytes_sent=content["bytes"],
        purpose=content["purpose"],
        authorizations=content["authorizations"],
        emergency_accesses=content["emergency_accesses"],
    )


async def _add_transfer_ends(connection: AsyncConnection, disclosures: list[Disclosure]) -> None:
    """Take the bytes sent, and the instances sent where the disclosure has no count, from the other entries.

    A streamed response has an ``instances-transferred`` entry, written when it ended, with the
    bytes sent and whether it completed. Any other response has its size on the request's entry.
    """
    by_request = {item.request_id: item for item in disclosures if item.request_id}
    requests = sorted(by_request)
    for start in range(0, len(requests), LOOKUP_CHUNK):
        rows = await connection.execute(
            select(audit_event.c.event_type, audit_event.c.content)
            .where(
                audit_event.c.request_id.in_(requests[start : start + LOOKUP_CHUNK]),
                audit_event.c.event_type != EventType.DATA_EXPORT,
            )
            .order_by(audit_event.c.sequence)
        )
        for row in rows:
            content = orjson.loads(row.content)
            found = by_request[content["request_id"]]
            if row.event_type == EventType.INSTANCES_TRANSFERRED:
                found.bytes_sent = content["bytes"]
                found.completed = bool(content["detail"].get("completed"))
                if found.instances is None:
                    found.instances = content["instances"]
            elif found.completed is None and content["bytes"] is not None:
                found.bytes_sent = content["bytes"]
