"""WADO-RS frames and bulk data (PS3.18 10.4.1.1.3 and 10.4.1.1.5).

Frames and bulk values are read from the stored object by position, so a frame of a large
multi-frame instance costs one ranged read. Only files whose positions cannot be used
(deflated or big endian data sets, some 1-bit images) are parsed whole.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from pydicom import dcmread
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from dicomweb_server.audit import EventType, request_audit
from dicomweb_server.dicom import transfer
from dicomweb_server.dicom.frames import FrameDecodeError, NoPixelData, decode_frame, read_frames_from_file
from dicomweb_server.dicom.parse import DEFLATED_TRANSFER_SYNTAXES
from dicomweb_server.dicom.transfer import EXPLICIT_VR_LITTLE_ENDIAN
from dicomweb_server.errors import InvalidRequest, NotAcceptable, NotFound
from dicomweb_server.index.retrieve import InstanceLocation
from dicomweb_server.storage.store import ObjectStore
from dicomweb_server.web import media_types
from dicomweb_server.web.accept import MediaRange, accepted_ranges
from dicomweb_server.web.context import state
from dicomweb_server.web.decode_failures import decode_failures
from dicomweb_server.web.multipart import Part, new_boundary, write_parts
from dicomweb_server.web.wado import INSTANCE_LEVEL, find_visible, local_copy

FRAME_BATCH = 8
"""Frames read from the store at a time."""

MAX_FRAME_LIST = 1000
"""Frame numbers one frame list may contain. Numbers may repeat, so without a limit a short URL
could ask for one large frame thousands of times."""


@dataclass(frozen=True)
class FrameRepresentation:
    """How frames are sent: as stored (compressed bitstreams) or decoded to native pixels."""

    native: bool
    single_part: bool

    def content_type(self, location: InstanceLocation) -> str:
        stored = transfer.lookup(location.transfer_syntax_uid)
        if self.native or stored is None or not stored.encapsulated:
            return f"{media_types.OCTET_STREAM}; transfer-syntax={EXPLICIT_VR_LITTLE_ENDIAN}"
        return f"{stored.frame_media_type}; transfer-syntax={location.transfer_syntax_uid}"


def parse_frame_numbers(text: str) -> list[int]:
    """Parse a frame list ("1,3,5"); frame numbers start at 1, and a list has at most MAX_FRAME_LIST."""
    items = text.split(",")
    if len(items) > MAX_FRAME_LIST:
        raise InvalidRequest(
            f"the frame list has {len(items)} frame numbers, more than the maximum of {MAX_FRAME_LIST}; "
            "request the frames in several requests, or retrieve the whole instance"
        )
    numbers = []
    for item in items:
        item = item.strip()
        if not item.isdigit() or int(item) < 1:
            raise InvalidRequest(
                f"invalid frame number {item!r} in {text!r}; give frame numbers from 1 separated by commas"
            )
        numbers.append(int(item))
    return numbers


def negotiate_frames(
    ranges: list[MediaRange], location: InstanceLocation, frame_count: int
) -> FrameRepresentation:
    """Pick the first accepted representation this instance's frames can be sent in.

    application/octet-stream without a transfer syntax means uncompressed pixels (Explicit VR
    Little Endian), and so does ``*/*``, which PS3.18 8.7.7 makes the default media type of the
    resource, unless no installed decoder reads the stored syntax. ``transfer-syntax=*`` takes the
    frames as stored; an image media type such as image/jp2 takes them as stored when the stored
    syntax produces that type.
    """
    stored = transfer.lookup(location.transfer_syntax_uid)
    encapsulated = stored is not None and stored.encapsulated
    can_decode = not encapsulated or transfer.can_decode(location.transfer_syntax_uid)
    for media_range in ranges:
        single = (
            media_range.media_type != media_types.MULTIPART_RELATED
            and media_range.type != "*"
            and frame_count == 1
        )
        inner, syntax = _inner(media_range)
        if inner is None:
            continue
        if inner == "*/*" and syntax is None and can_decode:
            return FrameRepresentation(native=True, single_part=single)
        if inner == "*/*" or syntax == transfer.ANY or syntax == location.transfer_syntax_uid:
            return FrameRepresentation(native=not encapsulated, single_part=single)
        if inner == media_types.OCTET_STREAM and syntax in (None, EXPLICIT_VR_LITTLE_ENDIAN) and can_decode:
            return FrameRepresentation(native=True, single_part=single)
        if encapsulated and stored is not None and inner == stored.frame_media_type and syntax is None:
            return FrameRepresentation(native=False, single_part=single)
    offered = ", ".join(str(media_range) for media_range in ranges)
    options = [f'multipart/related; type="{media_types.OCTET_STREAM}"; transfer-syntax=*']
    if can_decode:
        options.append(f'multipart/related; type="{media_types.OCTET_STREAM}" (uncompressed)')
    if encapsulated and stored is not None:
        options.append(f'multipart/related; type="{stored.frame_media_type}"')
    raise NotAcceptable(
        f"none of the accepted media types ({offered}) can be produced for the frames of instance "
        f"{location.sop_instance_uid}, stored in {transfer.describe(location.transfer_syntax_uid)}; "
        f"use one of: {'; '.join(options)}"
    )


def _inner(media_range: MediaRange) -> tuple[str | None, str | None]:
    """Return the media type of the parts a range asks for, and its transfer-syntax parameter."""
    syntax = media_range.param("transfer-syntax")
    if media_range.type == "*":
        return "*/*", syntax
    if media_range.media_type == media_types.MULTIPART_RELATED:
        return (media_range.param("type") or media_types.OCTET_STREAM).lower(), syntax
    if (
        media_range.media_type == media_types.OCTET_STREAM
        or media_range.type == "image"
        or media_range.type == "video"
    ):
        return media_range.media_type, syntax
    return None, None


async def retrieve_frames(request: Request) -> Response:
    request_audit(request).describe(
        EventType.BEGIN_TRANSFERRING, "RetrieveFrames", level="frames", discloses=True
    )
    numbers = parse_frame_numbers(request.path_params["frame_list"])
    (location,) = await find_visible(request, INSTANCE_LEVEL)
    frame_count = location.frame_count
    if not _has_pixels(location) and _positions_indexed(location):
        raise NotFound(_no_pixel_data(location))
    for number in numbers:
        if number > frame_count:
            raise NotFound(
                f"frame {number} does not exist; instance {location.sop_instance_uid} "
                f"has {frame_count} frame(s)"
            )

    representation = negotiate_frames(accepted_ranges(request), location, len(numbers))
    store = state(request).store
    if representation.single_part:
        body = _single(await read_frames(store, location, numbers, representation.native))
        return StreamingResponse(body, media_type=representation.content_type(location))
    return await _multipart_frames(store, location, numbers, representation)


async def _multipart_frames(
    store: ObjectStore, location: InstanceLocation, numbers: list[int], representation: FrameRepresentation
) -> Response:
    content_type = representation.content_type(location)
    # The first frames are read before the response starts, so that an instance without pixel
    # data or a frame that cannot be decoded is an error status rather than a cut-off body.
    first = await read_frames(store, location, numbers[:FRAME_BATCH], representation.native)
    boundary = new_boundary()
    parts = _frame_parts(store, location, numbers, representation, content_type, first)
    inner = content_type.split(";")[0]
    return StreamingResponse(
        write_parts(parts, boundary),
        media_type=f'{media_types.MULTIPART_RELATED}; type="{inner}"; boundary={boundary}',
    )


def _has_pixels(location: InstanceLocation) -> bool:
    return (
        "7FE00010" in location.bulkdata
        or bool(location.number_of_frames)
        or location.pixel_layout is not None
    )


def _positions_indexed(location: InstanceLocation) -> bool:
    """Return whether ingest recorded value positions, and with them whether pixel data exists.

    Deflated and big endian instances are indexed without positions, so whether they have pixel
    data is known only once the stored file is read.
    """
    uid = location.transfer_syntax_uid
    return transfer.is_little_endian(uid) and uid not in DEFLATED_TRANSFER_SYNTAXES


def _no_pixel_data(location: InstanceLocation) -> str:
    return f"instance {location.sop_instance_uid} has no pixel data, so it has no frames"


async def _single(frames: list[bytes]) -> AsyncIterator[bytes]:
    for frame in frames:
        yield frame


async def _frame_parts(
    store: ObjectStore,
    location: InstanceLocation,
    numbers: list[int],
    representation: FrameRepresentation,
    content_type: str,
    first: list[bytes],
) -> AsyncIterator[Part]:
    """Yield one part per frame, given the frames of the first batch already read."""
    for frame in first:
        yield Part(content_type, _single([frame]))
    # The rest is read a batch at a time, so memory stays bounded for long frame lists.
    for start in range(FRAME_BATCH, len(numbers), FRAME_BATCH):
        frames = await read_frames(
            store, location, numbers[start : start + FRAME_BATCH], representation.native
        )
        for frame in frames:
            yield Part(content_type, _single([frame]))


async def read_frames(
    store: ObjectStore, location: InstanceLocation, numbers: list[int], native: bool
) -> list[bytes]:
    """Read frames by number, decoded to native pixels when ``native`` is true.

    Raises
    ------
    NotFound
        When the instance turns out to have no pixel data.
    NotAcceptable
        When a frame cannot be decoded; the stored frames can still be sent as they are.
    """
    try:
        return await _read_frames(store, location, numbers, native)
    except NoPixelData as error:
        raise NotFound(_no_pixel_data(location)) from error
    except FrameDecodeError as error:
        decode_failures.report("WADO-RS frames", location.instance_key, error)
        raise NotAcceptable(
            f"the frames of instance {location.sop_instance_uid}, stored in "
            f"{transfer.describe(location.transfer_syntax_uid)}, cannot be sent uncompressed: {error}; "
            f'request them as stored with multipart/related; type="{media_types.OCTET_STREAM}"; '
            "transfer-syntax=*"
        ) from error


async def _read_frames(
    store: ObjectStore, location: InstanceLocation, numbers: list[int], native: bool
) -> list[bytes]:
    layout = location.pixel_layout
    if layout is None:
        async with local_copy(store, location.object_key) as path:
            return await asyncio.to_thread(read_frames_from_file, path, numbers, native)

    frames = []
    for number in numbers:
        fragments = layout.frames[number - 1]
        pieces = await store.read_ranges(
            location.object_key, [(offset, offset + length) for offset, length in fragments]
        )
        frame = b"".join(pieces)
        if native and layout.encapsulated:
            frame = await asyncio.to_thread(
                decode_frame, frame, location.transfer_syntax_uid, layout.pixel_attributes
            )
        frames.append(frame)
    return frames


async def retrieve_bulkdata(request: Request) -> Response:
    """Return the value of one bulk data element, named by the path in its BulkDataURI."""
    request_audit(request).describe(
        EventType.BEGIN_TRANSFERRING, "RetrieveBulkdata", level="bulkdata", discloses=True
    )
    path = request.path_params["attribute_path"].strip("/")
    (location,) = await find_visible(request, INSTANCE_LEVEL)
    ranges = accepted_ranges(request)
    store = state(request).store

    if path == "7FE00010" and location.pixel_layout is not None and location.pixel_layout.encapsulated:
        # Compressed pixel data is sent one frame per part, negotiated as frames are: as stored
        # for transfer-syntax=* or the frames' own media type, decoded for application/octet-stream.
        numbers = list(range(1, location.frame_count + 1))
        negotiated = negotiate_frames(ranges, location, len(numbers))
        representation = FrameRepresentation(native=negotiated.native, single_part=False)
        return await _multipart_frames(store, location, numbers, representation)

    _check_octet_stream(ranges)
    body = await _bulk_value(store, location, path)
    boundary = new_boundary()
    parts = _single_part(Part(media_types.OCTET_STREAM, body))
    return StreamingResponse(
        write_parts(parts, boundary),
        media_type=f'{media_types.MULTIPART_RELATED}; type="{media_types.OCTET_STREAM}"; boundary={boundary}',
    )


async def _single_part(part: Part) -> AsyncIterator[Part]:
    yield part


def _check_octet_stream(ranges: list[MediaRange]) -> None:
    for media_range in ranges:
        if media_range.type == "*" or media_range.media_type in (
            media_types.MULTIPART_RELATED,
            media_types.OCTET_STREAM,
        ):
            return
    offered = ", ".join(str(media_range) for media_range in ranges)
    raise NotAcceptable(
        f"none of the accepted media types ({offered}) can be produced; bulk data is available as "
        f'multipart/related; type="{media_types.OCTET_STREAM}"'
    )


async def _bulk_value(store: ObjectStore, location: InstanceLocation, path: str) -> AsyncIterator[bytes]:
    known = location.bulkdata.get(path)
    if known is not None and known.length != 0xFFFFFFFF:
        return store.stream(location.object_key, known.offset, known.offset + known.length)
    if location.bulkdata and known is None:
        raise NotFound(f"instance {location.sop_instance_uid} has no bulk data at {path}")

    async with local_copy(store, location.object_key) as local:
        value = await asyncio.to_thread(_value_by_parsing, local, path)
    if value is None:
        raise NotFound(f"instance {location.sop_instance_uid} has no bulk data at {path}")
    return _single([value])


def _value_by_parsing(path: Path, attribute_path: str) -> bytes | None:
    """Find a value by parsing the whole file, converted to little endian (the slow path)."""
    dataset = dcmread(BytesIO(transfer.to_explicit_vr_little_endian(path)))
    parts = attribute_path.split("/")
    current = dataset
    for index, part in enumerate(parts):
        if index % 2 == 0:
            try:
                element = current[int(part, 16)]
            except (KeyError, ValueError):
                return None
            if index == len(parts) - 1:
                value = element.value
                return bytes(value) if isinstance(value, bytes | bytearray) else None
            current = element
        else:
            try:
                current = current.value[int(part)]
            except (IndexError, ValueError, AttributeError):
                return None
    return None
