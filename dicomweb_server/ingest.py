"""Storing one instance: spool, parse, write the object, record it in the index.

STOW-RS and ``dicomweb-server import`` both store through :class:`Ingest`, so an instance
is checked and recorded the same way whichever door it came in by. The object is always
written before its index row: a crash between the two leaves an object that no row points
to, which ``dicomweb-server sweep`` removes, and never a row without its object.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import logging
import os
from collections.abc import AsyncIterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncConnection

from dicomweb_server.audit import EventAction, EventType, RecordObject, StudyInvolved, record_change
from dicomweb_server.consent.authorizations import extend_for_study
from dicomweb_server.consent.quarantine import HoldFor, find_held_copy, hold_instance
from dicomweb_server.dicom.dicom_json import first_text
from dicomweb_server.dicom.parse import InstanceError, ParsedInstance, read_instance
from dicomweb_server.dicom.part10 import check_start, has_part10_header, write_part10
from dicomweb_server.dicom.status import FailureReason, WarningReason
from dicomweb_server.errors import PayloadTooLarge
from dicomweb_server.index.database import Index
from dicomweb_server.index.ingest import (
    RecordOutcome,
    RecordRejected,
    StoredObjectInfo,
    find_existing_instance,
    record_instance,
)
from dicomweb_server.storage.store import ObjectStore, StoreError, Upload

logger = logging.getLogger(__name__)

HASH_CHUNK_SIZE = 1024 * 1024
WRITE_BUFFER_SIZE = 1024 * 1024
"""Bytes of a part collected in memory before they are written to the spool file."""


@dataclass
class StoreResult:
    """The outcome of storing one instance, as the Store Instances Response reports it.

    UIDs are None when the part could not be parsed far enough to read them.
    """

    sop_class_uid: str | None = None
    sop_instance_uid: str | None = None
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    failure_reason: FailureReason | None = None
    message: str | None = None
    warnings: list[tuple[WarningReason, str]] = field(default_factory=list)
    duplicate: bool = False

    @property
    def stored(self) -> bool:
        return self.failure_reason is None


class Ingest:
    """Stores instances into one index and one object store."""

    def __init__(self, index: Index, store: ObjectStore, *, overwrite: bool, max_part_size: int) -> None:
        self.index = index
        self.store = store
        self.overwrite = overwrite
        self.max_part_size = max_part_size

    async def store_stream(
        self,
        chunks: AsyncIterable[bytes],
        *,
        transfer_syntax_hint: str | None = None,
        expected_study_instance_uid: str | None = None,
        hold: HoldFor | None = None,
    ) -> StoreResult:
        """Store the instance whose bytes arrive as ``chunks``.

        With ``hold`` (a store by an external organisation) the instance is held in quarantine
        instead of being recorded in the index, and it is never compared with what is stored.

        Raises
        ------
        PayloadTooLarge
            When the part exceeds the configured maximum size; nothing is kept.
        """
        upload = await self.store.begin_upload()
        try:
            digest, size = await _receive(upload, chunks, self.max_part_size)
            return await self._complete(
                upload, digest, size, transfer_syntax_hint, expected_study_instance_uid, hold
            )
        finally:
            await asyncio.shield(upload.discard())

    async def store_file(self, path: Path, *, expected_study_instance_uid: str | None = None) -> StoreResult:
        """Store the instance in a local file (used by ``dicomweb-server import``)."""
        return await self.store_stream(
            _read_file(path), expected_study_instance_uid=expected_study_instance_uid
        )

    async def _complete(
        self,
        upload: Upload,
        digest: str,
        size: int,
        transfer_syntax_hint: str | None,
        expected_study_instance_uid: str | None,
        hold: HoldFor | None = None,
    ) -> StoreResult:
        try:
            await asyncio.to_thread(check_start, upload.spool_path)
            if not await asyncio.to_thread(has_part10_header, upload.spool_path):
                digest, size = await _normalize(upload, transfer_syntax_hint)
            parsed = await asyncio.to_thread(read_instance, upload.spool_path)
        except InstanceError as error:
            return StoreResult(failure_reason=error.failure_reason, message=error.message)
        except Exception as error:  # noqa: BLE001 - one unreadable part must not fail the request
            # The exception text may quote values of the data set, so only its type is logged.
            logger.error("STOW-RS: parsing a part failed with %s", type(error).__name__)
            return StoreResult(
                failure_reason=FailureReason.PROCESSING_FAILURE,
                message=(
                    f"the archive could not process this instance ({type(error).__name__}); "
                    "the error is logged"
                ),
            )

        result = _result_for(parsed)
        if expected_study_instance_uid and parsed.study_instance_uid != expected_study_instance_uid:
            return _fail(
                result,
                FailureReason.DATA_SET_DOES_NOT_MATCH,
                f"StudyInstanceUID {parsed.study_instance_uid} differs from the study "
                f"{expected_study_instance_uid} in the request path; send it to /studies or to its own study",
            )

        # A held instance answers as a new one whatever is stored, so its store reveals nothing.
        duplicate = await self._check_duplicate(parsed, digest, result) if hold is None else None
        if duplicate is not None:
            return duplicate

        return await self._write(upload, parsed, StoredObjectInfo(upload.key, size, digest), result, hold)

    async def _check_duplicate(
        self, parsed: ParsedInstance, digest: str, result: StoreResult
    ) -> StoreResult | None:
        """Answer a second store of a stored instance before writing anything."""
        async with self.index.read() as connection:
            existing = await find_existing_instance(connection, parsed.sop_instance_uid)
        if existing is None:
            return None
        if existing.content_digest == digest:
            result.duplicate = True
            return result
        if self.overwrite:
            return None
        return _duplicate_failure(result)

    async def _write(
        self,
        upload: Upload,
        parsed: ParsedInstance,
        stored: StoredObjectInfo,
        result: StoreResult,
        hold: HoldFor | None = None,
    ) -> StoreResult:
        try:
            await upload.commit()
        except (StoreError, OSError) as error:
            logger.error("STOW-RS: writing object %s failed: %s", upload.key, type(error).__name__)
            return _fail(
                result, FailureReason.OUT_OF_RESOURCES, "the object store could not write the instance"
            )

        if hold is not None:
            return await self._hold(upload, parsed, stored, result, hold)

        recorded = False
        try:
            async with self.index.write() as connection:
                now = datetime.datetime.now(datetime.UTC)
                record = await record_instance(connection, parsed, stored, overwrite=self.overwrite, now=now)
                await extend_for_study(connection, parsed.study_instance_uid, now)
                await _record_stored(connection, parsed, record.outcome.value)
                recorded = True
        except RecordRejected as rejected:
            await asyncio.shield(self._delete_object(upload.key))
            return _rejection(result, rejected.outcome)
        except BaseException:
            # A failure after the last statement came from the commit, whose outcome is unknown:
            # the row may exist, so the object stays (at worst an orphan for the sweep).
            if not recorded:
                await asyncio.shield(self._delete_object(upload.key))
            raise

        if record.replaced_object_key:
            await asyncio.shield(self._delete_object(record.replaced_object_key))
        return result

    async def _hold(
        self,
        upload: Upload,
        parsed: ParsedInstance,
        stored: StoredObjectInfo,
        result: StoreResult,
        hold: HoldFor,
    ) -> StoreResult:
        """Hold a committed object in quarantine, unless the organisation sent the same bytes before.

        A second store of the same bytes gets the same response as the first and keeps the held
        row and object of the first, so resending cannot fill the quarantine.
        """
        recorded = False
        try:
            async with self.index.write() as connection:
                now = datetime.datetime.now(datetime.UTC)
                held_before = await find_held_copy(
                    connection, hold, parsed.sop_instance_uid, stored.content_digest
                )
                quarantine_id = held_before or await hold_instance(connection, parsed, stored, hold, now)
                outcome = "already held in quarantine" if held_before else "held in quarantine"
                await _record_stored(connection, parsed, outcome, quarantine_id)
                recorded = True
        except BaseException:
            if not recorded:
                await asyncio.shield(self._delete_object(upload.key))
            raise

        if held_before is not None:
            await asyncio.shield(self._delete_object(upload.key))
        return result

    async def _delete_object(self, key: str) -> None:
        try:
            await self.store.delete(key)
        except Exception:  # noqa: BLE001 - an object left behind is an orphan that the sweep removes
            logger.warning("STOW-RS: could not delete object %s; `dicomweb-server sweep` will remove it", key)


async def _record_stored(
    connection: AsyncConnection, parsed: ParsedInstance, outcome: str, quarantine_id: str | None = None
) -> None:
    """Record a stored or held instance in the audit trail, in the transaction that records it.

    A held instance has no index row, so its entry names the patient from the instance itself.
    """
    involved = StudyInvolved(parsed.study_instance_uid, instances=1)
    if quarantine_id is not None:
        involved.patient_id = first_text(parsed.metadata, "PatientID") or ""
        involved.issuer_of_patient_id = first_text(parsed.metadata, "IssuerOfPatientID") or ""
    objects = [RecordObject("instance", parsed.sop_instance_uid)]
    if quarantine_id is not None:
        objects.append(RecordObject("quarantine", quarantine_id))
    await record_change(
        connection,
        EventType.INSTANCES_ACCESSED,
        "store instance",
        event_action=EventAction.CREATE,
        level="instance",
        studies=[involved],
        objects=objects,
        instances=1,
        detail={
            "outcome": outcome,
            "series_instance_uid": parsed.series_instance_uid,
            "sop_class_uid": parsed.sop_class_uid,
        },
    )


async def _receive(upload: Upload, chunks: AsyncIterable[bytes], max_size: int) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    # Request bodies arrive in chunks of about 64 KiB, and each write of the spool file is a
    # hop to a worker thread, so chunks are collected into writes of up to WRITE_BUFFER_SIZE.
    pending = bytearray()
    async for chunk in chunks:
        size += len(chunk)
        if size > max_size:
            raise PayloadTooLarge(
                f"a DICOM part exceeds the maximum of {max_size} bytes; "
                "raise DICOMWEB_MAX_PART_SIZE or send a smaller instance"
            )
        digest.update(chunk)
        pending += chunk
        if len(pending) >= WRITE_BUFFER_SIZE:
            await upload.write(bytes(pending))
            pending.clear()
    if pending:
        await upload.write(bytes(pending))
    await upload.finish_writing()
    return digest.hexdigest(), size


async def _normalize(upload: Upload, transfer_syntax_hint: str | None) -> tuple[str, int]:
    """Give a bare data set its preamble and File Meta Information, in place of the spool file."""
    normalized = upload.spool_path.with_suffix(".part10")
    try:
        await asyncio.to_thread(write_part10, upload.spool_path, normalized, transfer_syntax_hint)
        await upload.replace_content(normalized)
    finally:
        if normalized.exists():
            normalized.unlink()
    return await asyncio.to_thread(_hash_file, upload.spool_path)


def _hash_file(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(HASH_CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest(), os.path.getsize(path)


async def _read_file(path: Path) -> AsyncIterable[bytes]:
    with path.open("rb") as file:
        while chunk := await asyncio.to_thread(file.read, HASH_CHUNK_SIZE):
            yield chunk


def _result_for(parsed: ParsedInstance) -> StoreResult:
    return StoreResult(
        sop_class_uid=parsed.sop_class_uid,
        sop_instance_uid=parsed.sop_instance_uid,
        study_instance_uid=parsed.study_instance_uid,
        series_instance_uid=parsed.series_instance_uid,
        warnings=list(parsed.warnings),
    )


def _fail(result: StoreResult, reason: FailureReason, message: str) -> StoreResult:
    result.failure_reason = reason
    result.message = message
    result.warnings = []
    return result


def _duplicate_failure(result: StoreResult) -> StoreResult:
    return _fail(
        result,
        FailureReason.DUPLICATE_SOP_INSTANCE,
        f"an instance with SOPInstanceUID {result.sop_instance_uid} and different content is already "
        "stored; the archive keeps the first version unless it runs with DICOMWEB_OVERWRITE=true",
    )


def _rejection(result: StoreResult, outcome: RecordOutcome) -> StoreResult:
    if outcome is RecordOutcome.IDENTICAL_DUPLICATE:
        result.duplicate = True
        return result
    if outcome is RecordOutcome.CONFLICTING_DUPLICATE:
        return _duplicate_failure(result)
    if outcome is RecordOutcome.STUDY_OF_OTHER_PATIENT:
        return _fail(
            result,
            FailureReason.DATA_SET_DOES_NOT_MATCH,
            f"the study {result.study_instance_uid} already holds instances of another patient "
            "(PatientID and IssuerOfPatientID differ); correct the patient or the StudyInstanceUID",
        )
    return _fail(
        result,
        FailureReason.DATA_SET_DOES_NOT_MATCH,
        f"the series {result.series_instance_uid} already belongs to another study; "
        "correct the SeriesInstanceUID or the StudyInstanceUID",
    )
