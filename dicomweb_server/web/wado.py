"""WADO-RS: the Retrieve transaction of the Studies Service (PS3.18 10.4).

Every form first looks the path up through ``index.retrieve`` with the requester's visibility,
so a study the requester may not see answers 404 exactly as one that does not exist. Bodies are
streamed from the object store.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from dicomweb_server.audit import EventType, request_audit
from dicomweb_server.dicom import transfer
from dicomweb_server.dicom.transfer import EXPLICIT_VR_LITTLE_ENDIAN
from dicomweb_server.errors import NotAcceptable, NotFound
from dicomweb_server.index.retrieve import InstanceLocation, find_instances, stream_metadata
from dicomweb_server.storage.store import ObjectStore
from dicomweb_server.web import media_types
from dicomweb_server.web.accept import MediaRange, accepted_ranges
from dicomweb_server.web.context import requester_visibility, state
from dicomweb_server.web.decode_failures import decode_failures
from dicomweb_server.web.multipart import Part, new_boundary, write_parts
from dicomweb_server.web.negotiation import require_json
from dicomweb_server.web.urls import dicomweb_root

NOT_FOUND = "not found"
"""The one message of every 404 for a study, series or instance, visible or not."""


async def find_visible(request: Request, level_params: tuple[str, ...]) -> list[InstanceLocation]:
    """Return the instances under the request path that the requester may see, or raise NotFound.

    The study in the path and the instances found are named in the request's audit entry.
    """
    params = request.path_params
    audit = request_audit(request)
    audit.request_studies([params["study_instance_uid"]])
    app = state(request)
    async with app.index.read() as connection:
        found = await find_instances(
            connection,
            requester_visibility(request),
            params["study_instance_uid"],
            params.get("series_instance_uid") if "series_instance_uid" in level_params else None,
            params.get("sop_instance_uid") if "sop_instance_uid" in level_params else None,
        )
    if not found:
        raise NotFound(NOT_FOUND)
    for location in found:
        audit.involve(location.study_instance_uid, 1)
    return found


STUDY_LEVEL = ("study_instance_uid",)
SERIES_LEVEL = ("study_instance_uid", "series_instance_uid")
INSTANCE_LEVEL = ("study_instance_uid", "series_instance_uid", "sop_instance_uid")


async def retrieve_study(request: Request) -> Response:
    return await _retrieve_instances(request, STUDY_LEVEL)


async def retrieve_series(request: Request) -> Response:
    return await _retrieve_instances(request, SERIES_LEVEL)


async def retrieve_instance(request: Request) -> Response:
    return await _retrieve_instances(request, INSTANCE_LEVEL)


class InstanceRepresentation:
    """The client's acceptable transfer syntaxes for whole instances, in order of preference.

    ``"*"`` means the stored syntax. ``single_part`` is set when the client asked for a bare
    application/dicom body instead of multipart/related.
    """

    def __init__(self, syntaxes: list[str], single_part: bool) -> None:
        self.syntaxes = syntaxes
        self.single_part = single_part

    def choose(self, location: InstanceLocation) -> str | None:
        available = transfer.instance_syntaxes(location.transfer_syntax_uid, _has_pixel_data(location))
        for syntax in self.syntaxes:
            if syntax == transfer.ANY:
                return location.transfer_syntax_uid
            if syntax in available:
                return syntax
        return None


def _has_pixel_data(location: InstanceLocation) -> bool:
    return (
        location.pixel_layout is not None
        or "7FE00010" in location.bulkdata
        or bool(location.number_of_frames)
    )


def negotiate_instances(ranges: list[MediaRange], single_instance: bool) -> InstanceRepresentation:
    """Read the accepted transfer syntaxes for whole instances from the Accept ranges.

    Without a transfer-syntax parameter, application/dicom means Explicit VR Little Endian
    (PS3.18 8.7.3.5.2).
    """
    syntaxes: list[str] = []
    single = False
    for media_range in ranges:
        if media_range.type == "*" or media_range.media_type in (
            "multipart/*",
            media_types.MULTIPART_RELATED,
        ):
            inner = (
                media_range.param("type") if media_range.media_type == media_types.MULTIPART_RELATED else None
            )
            if inner not in (None, media_types.DICOM, "*/*", "application/*"):
                continue
        elif media_range.media_type == media_types.DICOM:
            if not syntaxes and single_instance:
                single = True
        else:
            continue
        syntax = media_range.param("transfer-syntax")
        if media_range.type == "*" and syntax is None:
            syntax = EXPLICIT_VR_LITTLE_ENDIAN
        syntaxes.append(syntax or EXPLICIT_VR_LITTLE_ENDIAN)
    if not syntaxes:
        offered = ", ".join(str(media_range) for media_range in ranges)
        raise NotAcceptable(
            f"none of the accepted media types ({offered}) can be produced; instances are "
            'available as multipart/related; type="application/dicom" with a transfer-syntax '
            "parameter (* for the stored syntax)"
        )
    return InstanceRepresentation(syntaxes, single)


RETRIEVE_ACTIONS = {
    STUDY_LEVEL: "RetrieveStudy",
    SERIES_LEVEL: "RetrieveSeries",
    INSTANCE_LEVEL: "RetrieveInstance",
}
LEVEL_NAMES = {STUDY_LEVEL: "study", SERIES_LEVEL: "series", INSTANCE_LEVEL: "instance"}


async def _retrieve_instances(request: Request, level: tuple[str, ...]) -> Response:
    request_audit(request).describe(
        EventType.BEGIN_TRANSFERRING, RETRIEVE_ACTIONS[level], level=LEVEL_NAMES[level], discloses=True
    )
    representation = negotiate_instances(accepted_ranges(request), level is INSTANCE_LEVEL)
    locations = await find_visible(request, level)

    choices = []
    for location in locations:
        syntax = representation.choose(location)
        if syntax is None:
            available = transfer.instance_syntaxes(location.transfer_syntax_uid, _has_pixel_data(location))
            raise NotAcceptable(
                f"instance {location.sop_instance_uid} cannot be sent in the requested transfer "
                f"syntaxes ({', '.join(representation.syntaxes)}); it is available in "
                f"{', '.join(transfer.describe(uid) for uid in available)}, or use transfer-syntax=*"
            )
        choices.append((location, syntax))

    store = state(request).store
    converted = None
    if len(choices) == 1 and choices[0][1] != choices[0][0].transfer_syntax_uid:
        # One instance is converted before the response starts, so a failure is a status code.
        converted = await _converted(store, choices[0][0])
    if representation.single_part:
        location, syntax = choices[0]
        return StreamingResponse(
            _instance_bytes(store, location, syntax, converted),
            media_type=f"{media_types.DICOM}; transfer-syntax={syntax}",
        )

    boundary = new_boundary()
    parts = _instance_parts(store, choices, converted)
    return StreamingResponse(
        write_parts(parts, boundary),
        media_type=f'{media_types.MULTIPART_RELATED}; type="{media_types.DICOM}"; boundary={boundary}',
    )


async def _instance_parts(
    store: ObjectStore, choices: list[tuple[InstanceLocation, str]], converted: bytes | None
) -> AsyncIterator[Part]:
    for location, syntax in choices:
        body = _instance_bytes(store, location, syntax, converted)
        yield Part(f"{media_types.DICOM}; transfer-syntax={syntax}", body)


async def _instance_bytes(
    store: ObjectStore, location: InstanceLocation, syntax: str, converted: bytes | None = None
) -> AsyncIterator[bytes]:
    if syntax == location.transfer_syntax_uid:
        async for chunk in store.stream(location.object_key):
            yield chunk
        return
    # NOTE: in a study or series, an instance that fails to convert ends the response at that
    # point, because the status line has already been sent. The client sees a cut-off body.
    yield converted if converted is not None else await _converted(store, location)


async def _converted(store: ObjectStore, location: InstanceLocation) -> bytes:
    """Return an instance converted to Explicit VR Little Endian.

    Raises
    ------
    NotAcceptable
        When the conversion fails, such as for a corrupt codestream stored as received; the
        stored bytes can still be requested with ``transfer-syntax=*``.
    """
    async with local_copy(store, location.object_key) as path:
        try:
            return await asyncio.to_thread(transfer.to_explicit_vr_little_endian, path)
        except Exception as error:  # noqa: BLE001 - pydicom and its decoders raise many types
            decode_failures.report("WADO-RS instances", location.instance_key, error)
            raise NotAcceptable(
                f"instance {location.sop_instance_uid}, stored in "
                f"{transfer.describe(location.transfer_syntax_uid)}, cannot be converted to "
                f"{transfer.describe(EXPLICIT_VR_LITTLE_ENDIAN)} ({type(error).__name__}: {error}); "
                "request it as stored with transfer-syntax=*"
            ) from error


class local_copy:  # noqa: N801 - used as a context manager, named like one
    """A local file holding an object: the stored file itself, or a temporary download."""

    def __init__(self, store: ObjectStore, key: str) -> None:
        self._store = store
        self._key = key
        self._temporary: Path | None = None

    async def __aenter__(self) -> Path:
        path = self._store.local_path(self._key)
        if path is not None:
            return path
        handle, name = tempfile.mkstemp(suffix=".dcm")
        os.close(handle)
        self._temporary = Path(name)
        await self._store.download(self._key, self._temporary)
        return self._temporary

    async def __aexit__(self, *exc_info: object) -> None:
        if self._temporary is not None:
            self._temporary.unlink(missing_ok=True)


async def retrieve_study_metadata(request: Request) -> Response:
    return await _retrieve_metadata(request, STUDY_LEVEL)


async def retrieve_series_metadata(request: Request) -> Response:
    return await _retrieve_metadata(request, SERIES_LEVEL)


async def retrieve_instance_metadata(request: Request) -> Response:
    return await _retrieve_metadata(request, INSTANCE_LEVEL)


async def _retrieve_metadata(request: Request, level: tuple[str, ...]) -> Response:
    audit = request_audit(request)
    audit.describe(
        EventType.INSTANCES_ACCESSED,
        RETRIEVE_ACTIONS[level] + "Metadata",
        level=LEVEL_NAMES[level],
        discloses=True,
    )
    media_type = require_json(accepted_ranges(request))
    params = request.path_params
    audit.request_studies([params["study_instance_uid"]])
    chunks = _metadata_chunks(
        request,
        params["study_instance_uid"],
        params.get("series_instance_uid") if "series_instance_uid" in level else None,
        params.get("sop_instance_uid") if "sop_instance_uid" in level else None,
    )
    first = await anext(chunks, None)
    if first is None:
        raise NotFound(NOT_FOUND)
    audit.involve(params["study_instance_uid"])
    return StreamingResponse(_prepend(first, chunks), media_type=media_type)


async def _metadata_chunks(
    request: Request, study_instance_uid: str, series_instance_uid: str | None, sop_instance_uid: str | None
) -> AsyncIterator[bytes]:
    """Yield "[", the stored JSON of each instance with absolute BulkDataURIs, and "]"."""
    marker = b'"BulkDataURI":"'
    replacement = marker + dicomweb_root(request).encode() + b"/"
    app = state(request)
    separator = b"["
    audit = request_audit(request)
    audit.instances_sent = 0
    async with app.index.read() as connection:
        async for document in stream_metadata(
            connection,
            requester_visibility(request),
            study_instance_uid,
            series_instance_uid,
            sop_instance_uid,
        ):
            audit.instances_sent = (audit.instances_sent or 0) + 1
            yield separator + document.replace(marker, replacement)
            separator = b","
    if separator == b",":
        yield b"]"


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in rest:
        yield chunk
