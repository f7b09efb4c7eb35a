"""Reading the trail: entries by id, or filtered by time, kind, requester, patient or study."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from dicomweb_server.audit.tables import audit_event, audit_event_study
from dicomweb_server.errors import NotFound

MAX_LIMIT = 1000


@dataclass(frozen=True)
class StoredEntry:
    """An entry as the trail stores it: its place in the chain, its hashes and its content."""

    sequence: int
    previous_hash: str
    hash: str
    content: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            **self.content,
            "sequence": self.sequence,
            "previous_hash": self.previous_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True)
class EntryFilter:
    """Conditions on the entries listed; None means any. Times are instants, ``until`` exclusive."""

    since: datetime.datetime | None = None
    until: datetime.datetime | None = None
    event_type: str | None = None
    subject: str | None = None
    organisation: str | None = None
    request_id: str | None = None
    patient_id: str | None = None
    issuer_of_patient_id: str | None = None
    study_instance_uid: str | None = None
    after: int = 0
    limit: int = 100


def _stored(row: Any) -> StoredEntry:
    return StoredEntry(row.sequence, row.previous_hash, row.hash, orjson.loads(row.content))


async def find_entries(connection: AsyncConnection, where: EntryFilter) -> list[StoredEntry]:
    """Return the entries that match, in chain order, starting after the sequence ``where.after``."""
    event = audit_event.c
    statement = select(event.sequence, event.previous_hash, event.hash, event.content).where(
        event.sequence > where.after
    )
    for column, value in (
        (event.event_type, where.event_type),
        (event.subject, where.subject),
        (event.organisation, where.organisation),
        (event.request_id, where.request_id),
    ):
        if value is not None:
            statement = statement.where(column == value)
    if where.since is not None:
        statement = statement.where(event.event_time >= where.since)
    if where.until is not None:
        statement = statement.where(event.event_time < where.until)
    if where.patient_id is not None or where.study_instance_uid is not None:
        statement = statement.where(event.sequence.in_(_naming(where)))
    statement = statement.order_by(event.sequence).limit(min(max(where.limit, 1), MAX_LIMIT))
    return [_stored(row) for row in await connection.execute(statement)]


def _naming(where: EntryFilter) -> Any:
    studies = audit_event_study.c
    statement = select(studies.sequence)
    if where.patient_id is not None:
        statement = statement.where(studies.patient_id == where.patient_id)
    if where.issuer_of_patient_id is not None:
        statement = statement.where(studies.issuer_of_patient_id == where.issuer_of_patient_id)
    if where.study_instance_uid is not None:
        statement = statement.where(studies.study_instance_uid == where.study_instance_uid)
    return statement


async def get_entry(connection: AsyncConnection, event_id: str) -> StoredEntry:
    """Return one entry by its event id, or raise NotFound."""
    event = audit_event.c
    row = (
        await connection.execute(
            select(event.sequence, event.previous_hash, event.hash, event.content).where(
                event.event_id == event_id.strip()
            )
        )
    ).first()
    if row is None:
        raise NotFound(f"no audit entry with id {event_id.strip()!r}")
    return _stored(row)
