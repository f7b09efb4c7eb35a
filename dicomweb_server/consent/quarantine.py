"""Instances stored by external organisations, held apart until an affiliated administrator decides.

A held instance has its object in the object store and a row in ``quarantine_instance``, and
nothing in the ``study``, ``series`` or ``instance`` tables, so no QIDO or WADO request can
find it, the storing organisation's included. Holding it never compares its UIDs with what is
stored, so the STOW-RS response is the same whether they exist or not.

Accepting records the instance in the index exactly as an affiliated store would, without ever
replacing what is stored: an instance whose SOP Instance UID is stored with other content, or
whose study belongs to another patient, stays held and the administrator is told why.
Rejecting deletes the object and keeps the row as the record of the decision.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from dicomweb_server.audit import EventAction, EventType, RecordObject, StudyInvolved, record_change
from dicomweb_server.auth.tables import organisation
from dicomweb_server.consent.authorizations import extend_for_study
from dicomweb_server.consent.tables import quarantine_instance
from dicomweb_server.dicom.dicom_json import first_text
from dicomweb_server.dicom.parse import InstanceError, ParsedInstance, read_instance
from dicomweb_server.dicom.values import normalize_date
from dicomweb_server.errors import Conflict, InvalidRequest, NotFound
from dicomweb_server.index.database import Index
from dicomweb_server.index.ingest import RecordOutcome, RecordRejected, StoredObjectInfo, record_instance
from dicomweb_server.storage.store import ObjectStore, StoreError

logger = logging.getLogger(__name__)

HELD = "held"
ACCEPTED = "accepted"
REJECTED = "rejected"
STATUSES = (HELD, ACCEPTED, REJECTED)
MAX_NOTE_LENGTH = 2000


@dataclass(frozen=True)
class HoldFor:
    """The sender of an instance that must be held: the external organisation and its user or token."""

    organisation_key: int
    submitted_by: str


@dataclass(frozen=True)
class QuarantinedInstance:
    quarantine_id: str
    organisation: str
    submitted_by: str
    received_at: datetime.datetime
    sop_instance_uid: str
    sop_class_uid: str
    study_instance_uid: str
    series_instance_uid: str
    patient_id: str | None
    issuer_of_patient_id: str | None
    patient_name: str | None
    study_date: str | None
    modality: str | None
    object_key: str
    object_size: int
    content_digest: str
    status: str
    decided_at: datetime.datetime | None
    decided_by: str | None
    decision_note: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.quarantine_id,
            "status": self.status,
            "organisation": self.organisation,
            "submitted_by": self.submitted_by,
            "received_at": self.received_at.isoformat(),
            "sop_instance_uid": self.sop_instance_uid,
            "sop_class_uid": self.sop_class_uid,
            "study_instance_uid": self.study_instance_uid,
            "series_instance_uid": self.series_instance_uid,
            "patient_id": self.patient_id,
            "issuer_of_patient_id": self.issuer_of_patient_id,
            "patient_name": self.patient_name,
            "study_date": self.study_date,
            "modality": self.modality,
            "size": self.object_size,
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
            "decided_by": self.decided_by,
            "decision_note": self.decision_note,
        }


async def hold_instance(
    connection: AsyncConnection,
    parsed: ParsedInstance,
    stored: StoredObjectInfo,
    hold: HoldFor,
    now: datetime.datetime,
) -> str:
    """Record a stored object as held for a decision; return its quarantine id."""
    metadata = parsed.metadata
    study_date = first_text(metadata, "StudyDate")
    quarantine_id = str(uuid.uuid4())
    await connection.execute(
        insert(quarantine_instance).values(
            quarantine_id=quarantine_id,
            organisation_key=hold.organisation_key,
            submitted_by=hold.submitted_by,
            received_at=now,
            sop_instance_uid=parsed.sop_instance_uid,
            sop_class_uid=parsed.sop_class_uid,
            study_instance_uid=parsed.study_instance_uid,
            series_instance_uid=parsed.series_instance_uid,
            patient_id=first_text(metadata, "PatientID"),
            issuer_of_patient_id=first_text(metadata, "IssuerOfPatientID"),
            patient_name=first_text(metadata, "PatientName"),
            study_date=normalize_date(study_date) if study_date else None,
            modality=first_text(metadata, "Modality"),
            transfer_syntax_uid=parsed.transfer_syntax_uid,
            object_key=stored.object_key,
            object_size=stored.object_size,
            content_digest=stored.content_digest,
            status=HELD,
        )
    )
    logger.info("Quarantine: held instance %s from an external organisation", quarantine_id)
    return quarantine_id


async def find_held_copy(
    connection: AsyncConnection, hold: HoldFor, sop_instance_uid: str, content_digest: str
) -> str | None:
    """Return the id of the instance with these bytes that the organisation stored and that is still held.

    The organisation's row is locked first (SELECT ... FOR UPDATE on PostgreSQL; SQLite runs one
    write transaction at a time anyway), so two stores of the same bytes at once keep one row.
    """
    await connection.execute(
        select(organisation.c.organisation_key)
        .where(organisation.c.organisation_key == hold.organisation_key)
        .with_for_update()
    )
    row = (
        await connection.execute(
            select(quarantine_instance.c.quarantine_id)
            .where(
                quarantine_instance.c.organisation_key == hold.organisation_key,
                quarantine_instance.c.status == HELD,
                quarantine_instance.c.sop_instance_uid == sop_instance_uid,
                quarantine_instance.c.content_digest == content_digest,
            )
            .limit(1)
        )
    ).first()
    return row.quarantine_id if row is not None else None


_FROM = quarantine_instance.join(
    organisation, quarantine_instance.c.organisation_key == organisation.c.organisation_key
)


def _quarantined(row: Any) -> QuarantinedInstance:
    return QuarantinedInstance(
        quarantine_id=row.quarantine_id,
        organisation=row.name,
        submitted_by=row.submitted_by,
        received_at=row.received_at,
        sop_instance_uid=row.sop_instance_uid,
        sop_class_uid=row.sop_class_uid,
        study_instance_uid=row.study_instance_uid,
        series_instance_uid=row.series_instance_uid,
        patient_id=row.patient_id,
        issuer_of_patient_id=row.issuer_of_patient_id,
        patient_name=row.patient_name,
        study_date=row.study_date,
        modality=row.modality,
        object_key=row.object_key,
        object_size=row.object_size,
        content_digest=row.content_digest,
        status=row.status,
        decided_at=row.decided_at,
        decided_by=row.decided_by,
        decision_note=row.decision_note,
    )


async def list_quarantine(
    connection: AsyncConnection,
    *,
    status: str | None = HELD,
    organisation_name: str | None = None,
    study_instance_uid: str | None = None,
) -> list[QuarantinedInstance]:
    """List quarantined instances, oldest first; ``status`` None lists every status."""
    if status is not None and status not in STATUSES:
        raise InvalidRequest(f"invalid quarantine status {status!r}; use {', '.join(STATUSES)} or all")
    statement = (
        select(*quarantine_instance.c, organisation.c.name)
        .select_from(_FROM)
        .order_by(quarantine_instance.c.received_at, quarantine_instance.c.quarantine_key)
    )
    if status is not None:
        statement = statement.where(quarantine_instance.c.status == status)
    if organisation_name is not None:
        statement = statement.where(organisation.c.name == organisation_name.strip())
    if study_instance_uid is not None:
        statement = statement.where(quarantine_instance.c.study_instance_uid == study_instance_uid.strip())
    return [_quarantined(row) for row in await connection.execute(statement)]


async def get_quarantined(connection: AsyncConnection, quarantine_id: str) -> QuarantinedInstance:
    row = (
        await connection.execute(
            select(*quarantine_instance.c, organisation.c.name)
            .select_from(_FROM)
            .where(quarantine_instance.c.quarantine_id == quarantine_id.strip())
        )
    ).first()
    if row is None:
        raise NotFound(f"no quarantined instance with id {quarantine_id.strip()!r}")
    return _quarantined(row)


def _held(found: QuarantinedInstance) -> QuarantinedInstance:
    if found.status != HELD:
        decided_at = found.decided_at.isoformat() if found.decided_at else "an unknown time"
        raise Conflict(
            f"the quarantined instance {found.quarantine_id} was {found.status} already, "
            f"by {found.decided_by} at {decided_at}"
        )
    return found


def _note(note: str | None) -> str | None:
    if note is None:
        return None
    cleaned = note.strip()
    if len(cleaned) > MAX_NOTE_LENGTH:
        raise InvalidRequest(f"invalid note: {len(cleaned)} characters, the maximum is {MAX_NOTE_LENGTH}")
    return cleaned or None


async def _mark(
    connection: AsyncConnection,
    quarantine_id: str,
    status: str,
    by: str,
    note: str | None,
    now: datetime.datetime,
) -> bool:
    """Record the decision on a held instance; return False when another decision came first."""
    result = await connection.execute(
        update(quarantine_instance)
        .where(quarantine_instance.c.quarantine_id == quarantine_id, quarantine_instance.c.status == HELD)
        .values(status=status, decided_at=now, decided_by=by, decision_note=note)
    )
    return bool(result.rowcount)


async def accept(
    index: Index, store: ObjectStore, quarantine_id: str, *, by: str, note: str | None, now: datetime.datetime
) -> QuarantinedInstance:
    """Record a held instance in the index, so that it is found like any stored instance.

    Raises
    ------
    NotFound
        When no quarantined instance has that id.
    Conflict
        When it was decided already, or when recording it would change what is stored: a SOP
        Instance UID stored with other content, a study of another patient, or a series of
        another study. The instance then stays held.
    """
    note = _note(note)
    async with index.read() as connection:
        found = _held(await get_quarantined(connection, quarantine_id))
    parsed = await _parse_object(store, found)

    stored = StoredObjectInfo(found.object_key, found.object_size, found.content_digest)
    same_object_stored = False
    try:
        async with index.write() as connection:
            if not await _mark(connection, found.quarantine_id, ACCEPTED, by, note, now):
                raise Conflict(f"the quarantined instance {found.quarantine_id} was decided by someone else")
            try:
                await record_instance(connection, parsed, stored, overwrite=False, now=now)
            except RecordRejected as rejected:
                if rejected.outcome is not RecordOutcome.IDENTICAL_DUPLICATE:
                    raise
                same_object_stored = True
            await extend_for_study(connection, parsed.study_instance_uid, now)
            await _record_decision(connection, found, "quarantine.accept", EventAction.CREATE, note)
    except RecordRejected as rejected:
        raise Conflict(_rejection_message(found, rejected.outcome)) from None

    if same_object_stored:
        # The archive already stores these exact bytes under its own object, so this copy is not needed.
        await _delete_object(store, found.object_key)
    logger.info("Quarantine: accepted instance %s", found.quarantine_id)
    async with index.read() as connection:
        return await get_quarantined(connection, found.quarantine_id)


async def reject(
    index: Index, store: ObjectStore, quarantine_id: str, *, by: str, note: str | None, now: datetime.datetime
) -> QuarantinedInstance:
    """Reject a held instance: its object is deleted, its row kept as the record of the decision."""
    note = _note(note)
    async with index.write() as connection:
        found = _held(await get_quarantined(connection, quarantine_id))
        if not await _mark(connection, found.quarantine_id, REJECTED, by, note, now):
            raise Conflict(f"the quarantined instance {found.quarantine_id} was decided by someone else")
        await _record_decision(connection, found, "quarantine.reject", EventAction.DELETE, note)
    await _delete_object(store, found.object_key)
    logger.info("Quarantine: rejected instance %s", found.quarantine_id)
    async with index.read() as connection:
        return await get_quarantined(connection, found.quarantine_id)


async def _record_decision(
    connection: AsyncConnection,
    found: QuarantinedInstance,
    action: str,
    event_action: EventAction,
    note: str | None,
) -> None:
    """Record a decision on a held instance in the audit trail, in the transaction that marks it."""
    involved = StudyInvolved(
        found.study_instance_uid,
        instances=1,
        patient_id=found.patient_id or "",
        issuer_of_patient_id=found.issuer_of_patient_id or "",
        study_date=found.study_date,
    )
    await record_change(
        connection,
        EventType.INSTANCES_ACCESSED,
        action,
        event_action=event_action,
        level="instance",
        studies=[involved],
        instances=1,
        objects=[
            RecordObject("quarantine", found.quarantine_id),
            RecordObject("instance", found.sop_instance_uid),
            RecordObject("organisation", found.organisation, found.organisation),
        ],
        detail={"note": note, "submitted_by": found.submitted_by},
    )


def _rejection_message(found: QuarantinedInstance, outcome: RecordOutcome) -> str:
    reasons = {
        RecordOutcome.CONFLICTING_DUPLICATE: (
            f"an instance with SOPInstanceUID {found.sop_instance_uid} and other content is already stored"
        ),
        RecordOutcome.STUDY_OF_OTHER_PATIENT: (
            f"the study {found.study_instance_uid} already holds instances of another patient"
        ),
        RecordOutcome.SERIES_OF_OTHER_STUDY: (
            f"the series {found.series_instance_uid} already belongs to another study"
        ),
    }
    reason = reasons.get(outcome, outcome.value)
    return (
        f"cannot accept the quarantined instance {found.quarantine_id}: {reason}; accepting it would change "
        "what the archive holds, so it stays held; reject it"
    )


async def _parse_object(store: ObjectStore, found: QuarantinedInstance) -> ParsedInstance:
    try:
        async with _local_copy(store, found.object_key) as path:
            return await asyncio.to_thread(read_instance, path)
    except InstanceError as error:
        raise Conflict(
            f"cannot accept the quarantined instance {found.quarantine_id}: {error.message}"
        ) from None
    except (StoreError, OSError) as error:
        raise StoreError(f"cannot read the quarantined instance {found.quarantine_id}: {error}") from error


@contextlib.asynccontextmanager
async def _local_copy(store: ObjectStore, key: str) -> AsyncIterator[Path]:
    path = store.local_path(key)
    if path is not None:
        yield path
        return
    handle, name = tempfile.mkstemp(suffix=".dcm")
    os.close(handle)
    try:
        await store.download(key, Path(name))
        yield Path(name)
    finally:
        os.unlink(name)


async def _delete_object(store: ObjectStore, key: str) -> None:
    try:
        await store.delete(key)
    except Exception:  # noqa: BLE001 - an object no row points to is removed by the sweep
        logger.warning("Quarantine: could not delete object %s; `dicomweb-server sweep` will remove it", key)
