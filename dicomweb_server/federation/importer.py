"""Importing a study from a peer: its instances retrieved with WADO-RS and stored through our ingest.

The study is requested as stored (``transfer-syntax=*``), or in the peer's default transfer
syntax when the peer rejects that form. Each part of the multipart body is handed to
:class:`~dicomweb_server.ingest.Ingest` as it arrives, the path STOW-RS takes, so an imported
instance is checked, stored and indexed as if a client had sent it, and no instance is held in
memory whole.

NOTE: instances are stored with the patient identity the peer sent. Reconciling it with this
archive's own PatientID (a new accession, the peer's identifiers kept in
OtherPatientIDsSequence) is left to the person who imports.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from dicomweb_server.dicom.status import FailureReason
from dicomweb_server.errors import InvalidRequest, NotFound, PayloadTooLarge
from dicomweb_server.federation.credentials import PeerAccess
from dicomweb_server.federation.errors import PeerError
from dicomweb_server.federation.retrieval import PeerStream, open_stream
from dicomweb_server.federation.transport import describe_status
from dicomweb_server.ingest import Ingest, StoreResult
from dicomweb_server.web.accept import MediaRange, parse_media_type
from dicomweb_server.web.multipart import PartEvent, PartStart, part_chunks, read_parts

DICOM = "application/dicom"
STUDY_ACCEPT = (
    f'multipart/related; type="{DICOM}"; transfer-syntax=*',
    f'multipart/related; type="{DICOM}"',
)


@dataclass
class ImportOutcome:
    """The stored, already stored and failed instances, and why the peer's body ended early, if it did."""

    results: list[StoreResult]
    interrupted: str | None = None


async def import_study(access: PeerAccess, study_instance_uid: str, ingest: Ingest) -> ImportOutcome:
    """Retrieve a study from the peer and store each of its instances.

    Raises
    ------
    NotFound
        When the peer does not have the study (or does not let this archive see it).
    PeerError
        When the peer cannot be reached or fails before sending any instance.
    """
    stream = await _open_study(access, study_instance_uid)
    results: list[StoreResult] = []
    try:
        boundary = _boundary(access, stream)
        events = read_parts(stream.chunks(), boundary)
        async for event in events:
            if isinstance(event, PartStart):
                results.append(await _store_part(ingest, events, event, study_instance_uid))
    except (PeerError, InvalidRequest) as error:
        reason = error.reason if isinstance(error, PeerError) else error.message
        if not results:
            raise PeerError(access.peer.name, reason) from None
        return ImportOutcome(results, interrupted=reason)
    finally:
        await stream.aclose()
    return ImportOutcome(results)


async def _open_study(access: PeerAccess, study_instance_uid: str) -> PeerStream:
    for accept in STUDY_ACCEPT:
        stream = await open_stream(access, f"studies/{study_instance_uid}", accept)
        if stream.status_code == 200:
            return stream
        await stream.aclose()
        if stream.status_code == 404:
            raise NotFound("not found")
        if stream.status_code not in (400, 406):
            raise PeerError(access.peer.name, describe_status(stream.status_code))
    raise PeerError(
        access.peer.name,
        "cannot send the study as multipart/related application/dicom (HTTP 406 to both forms asked)",
    )


def _boundary(access: PeerAccess, stream: PeerStream) -> str:
    content_type = parse_media_type(stream.content_type)
    boundary = content_type.param("boundary")
    if content_type.media_type != "multipart/related" or not boundary:
        raise PeerError(
            access.peer.name,
            f"responded to the study retrieval with {content_type.media_type!r}, not multipart/related",
        )
    return boundary


async def _store_part(
    ingest: Ingest, events: AsyncIterator[PartEvent], start: PartStart, study_instance_uid: str
) -> StoreResult:
    part_type = _part_type(start)
    chunks = part_chunks(events)
    try:
        if part_type.media_type != DICOM:
            return StoreResult(
                failure_reason=FailureReason.CANNOT_UNDERSTAND,
                message=f"the peer sent a part of type {part_type.media_type!r}, not {DICOM}",
            )
        return await ingest.store_stream(
            chunks,
            transfer_syntax_hint=part_type.param("transfer-syntax"),
            expected_study_instance_uid=study_instance_uid,
        )
    except PayloadTooLarge as error:
        return StoreResult(failure_reason=FailureReason.OUT_OF_RESOURCES, message=error.message)
    finally:
        async for _ in chunks:
            pass


def _part_type(start: PartStart) -> MediaRange:
    try:
        return parse_media_type(start.headers.get("content-type") or DICOM)
    except InvalidRequest:
        return parse_media_type("application/octet-stream")
