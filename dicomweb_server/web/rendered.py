"""WADO-RS rendered and thumbnail resources (PS3.18 10.4.1.1.4 and 8.3.5).

Every form looks the path up through ``wado.find_visible``, so a study the requester may not
see gets the same 404 as one that does not exist. An image is rendered from one frame: its
frame bytes are read by position and the data set before the pixel data gives the attributes
the rendering needs. A study or series renders its first instance with pixel data, in series
and instance number order. An Encapsulated PDF instance is rendered as the PDF document itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable

from pydicom.dataset import Dataset
from pydicom.uid import UID
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from dicomweb_server.audit import EventType, request_audit
from dicomweb_server.dicom import transfer
from dicomweb_server.dicom.parse import DEFLATED_TRANSFER_SYNTAXES
from dicomweb_server.dicom.render import (
    ENCAPSULATED_DOCUMENT_TYPES,
    PIXEL_DATA_KEYWORDS,
    RenderingError,
    decode_dataset_frame,
    decode_stored_frame,
    read_dataset,
    read_encapsulated_document,
    read_header,
    render_frame,
)
from dicomweb_server.dicom.render_parameters import (
    DEFAULT_QUALITY,
    RENDERED_IMAGE_TYPES,
    RenderingParameterError,
    RenderingParameters,
    Viewport,
    parse_quality,
    parse_viewport,
    parse_window,
)
from dicomweb_server.errors import InvalidRequest, NotAcceptable, NotFound
from dicomweb_server.index.retrieve import InstanceLocation
from dicomweb_server.storage.store import ObjectStore
from dicomweb_server.web import media_types
from dicomweb_server.web.accept import MediaRange, accepted_ranges, parse_media_type
from dicomweb_server.web.context import state
from dicomweb_server.web.decode_failures import decode_failures
from dicomweb_server.web.frames import parse_frame_numbers, read_frames
from dicomweb_server.web.multipart import Part, new_boundary, write_parts
from dicomweb_server.web.responses import warning_header
from dicomweb_server.web.wado import INSTANCE_LEVEL, SERIES_LEVEL, STUDY_LEVEL, find_visible, local_copy

THUMBNAIL_SIZE = 128
"""Maximum width and height of a thumbnail, in pixels, when the request gives no viewport."""

ENCAPSULATED_DOCUMENT_PATH = "00420011"
UNDEFINED_LENGTH = 0xFFFFFFFF


async def retrieve_study_rendered(request: Request) -> Response:
    return await _render_resource(request, STUDY_LEVEL, thumbnail=False)


async def retrieve_series_rendered(request: Request) -> Response:
    return await _render_resource(request, SERIES_LEVEL, thumbnail=False)


async def retrieve_instance_rendered(request: Request) -> Response:
    return await _render_resource(request, INSTANCE_LEVEL, thumbnail=False)


async def retrieve_frames_rendered(request: Request) -> Response:
    return await _render_frames(request, thumbnail=False)


async def retrieve_study_thumbnail(request: Request) -> Response:
    return await _render_resource(request, STUDY_LEVEL, thumbnail=True)


async def retrieve_series_thumbnail(request: Request) -> Response:
    return await _render_resource(request, SERIES_LEVEL, thumbnail=True)


async def retrieve_instance_thumbnail(request: Request) -> Response:
    return await _render_resource(request, INSTANCE_LEVEL, thumbnail=True)


async def retrieve_frames_thumbnail(request: Request) -> Response:
    return await _render_frames(request, thumbnail=True)


RENDERED_ACTIONS = {
    STUDY_LEVEL: "RetrieveStudy",
    SERIES_LEVEL: "RetrieveSeries",
    INSTANCE_LEVEL: "RetrieveInstance",
}
LEVEL_NAMES = {STUDY_LEVEL: "study", SERIES_LEVEL: "series", INSTANCE_LEVEL: "instance"}


def _describe(request: Request, action: str, level: str, thumbnail: bool) -> None:
    suffix = "Thumbnail" if thumbnail else "Rendered"
    request_audit(request).describe(
        EventType.INSTANCES_ACCESSED, action + suffix, level=level, discloses=True
    )


async def _render_resource(request: Request, level: tuple[str, ...], *, thumbnail: bool) -> Response:
    _describe(request, RENDERED_ACTIONS[level], LEVEL_NAMES[level], thumbnail)
    locations = await find_visible(request, level)
    location = representative_instance(locations)
    ranges = accepted_ranges(request)
    store = state(request).store

    if not has_pixel_data(location):
        if thumbnail:
            raise NotFound(_no_thumbnail_message(location))
        if location.sop_class_uid in ENCAPSULATED_DOCUMENT_TYPES:
            return await document_response(store, location, ranges)
        raise NotAcceptable(_not_renderable_message(location))

    # NOTE: a multi-frame instance is rendered from its first frame, also as image/gif. The
    # frames resource renders any other frame.
    media_type = choose_media_type(ranges, RENDERED_IMAGE_TYPES)
    parameters, warnings = rendering_parameters(request.query_params, media_type, thumbnail=thumbnail)
    renderer = FrameRenderer(store, location)
    body = await renderer.render(1, parameters)
    return Response(body, media_type=media_type, headers=_warning_headers(warnings))


async def _render_frames(request: Request, *, thumbnail: bool) -> Response:
    _describe(request, "RetrieveFrames", "frames", thumbnail)
    numbers = parse_frame_numbers(request.path_params["frame_list"])
    (location,) = await find_visible(request, INSTANCE_LEVEL)
    if not has_pixel_data(location):
        raise NotFound(f"instance {location.sop_instance_uid} has no pixel data, so it has no frames")
    check_frame_numbers(location, numbers, NotFound)

    media_type = choose_media_type(accepted_ranges(request), RENDERED_IMAGE_TYPES)
    parameters, warnings = rendering_parameters(request.query_params, media_type, thumbnail=thumbnail)
    renderer = FrameRenderer(state(request).store, location)
    first = await renderer.render(numbers[0], parameters)
    if len(numbers) == 1:
        return Response(first, media_type=media_type, headers=_warning_headers(warnings))

    # Several frames are sent as multipart/related, one rendered image per part, in the order
    # requested. Each frame after the first is rendered while the response is being sent.
    boundary = new_boundary()
    parts = _frame_parts(renderer, first, numbers[1:], parameters)
    return StreamingResponse(
        write_parts(parts, boundary),
        media_type=f'{media_types.MULTIPART_RELATED}; type="{media_type}"; boundary={boundary}',
        headers=_warning_headers(warnings),
    )


async def _frame_parts(
    renderer: FrameRenderer, first: bytes, numbers: list[int], parameters: RenderingParameters
) -> AsyncIterator[Part]:
    yield Part(parameters.media_type, _single(first))
    for number in numbers:
        yield Part(parameters.media_type, _single(await renderer.render(number, parameters)))


async def _single(data: bytes) -> AsyncIterator[bytes]:
    yield data


def check_frame_numbers(
    location: InstanceLocation, numbers: Iterable[int], error: type[InvalidRequest] | type[NotFound]
) -> None:
    """Raise ``error`` for the first frame number past the instance's last frame."""
    for number in numbers:
        if number > location.frame_count:
            raise error(
                f"frame {number} does not exist; instance {location.sop_instance_uid} "
                f"has {location.frame_count} frame(s)"
            )


def has_pixel_data(location: InstanceLocation) -> bool:
    """Return whether an instance has, or may have, pixel data (integer or float) at the top level.

    Big endian and deflated data sets have no recorded positions, so whether they contain pixel
    data is known only once the stored file is parsed. They count as images here. Rendering one
    without pixel data raises NotAcceptable with that reason.
    """
    if location.pixel_layout is not None:
        return True
    if any(f"{tag:08X}" in location.bulkdata for tag in PIXEL_DATA_KEYWORDS):
        return True
    syntax = location.transfer_syntax_uid
    return not transfer.is_little_endian(syntax) or syntax in DEFLATED_TRANSFER_SYNTAXES


def representative_instance(locations: list[InstanceLocation]) -> InstanceLocation:
    """Return the instance that represents a study or series: the first image, else the first document.

    Without either, the first instance is returned, and rendering it reports why it cannot be
    rendered.
    """
    for location in locations:
        if has_pixel_data(location):
            return location
    for location in locations:
        if location.sop_class_uid in ENCAPSULATED_DOCUMENT_TYPES:
            return location
    return locations[0]


def _sop_class(location: InstanceLocation) -> str:
    name = UID(location.sop_class_uid).name
    return f"{location.sop_class_uid} ({name})" if name != location.sop_class_uid else location.sop_class_uid


def _not_renderable_message(location: InstanceLocation) -> str:
    return (
        f"instance {location.sop_instance_uid} of SOP Class {_sop_class(location)} has no pixel data and "
        "cannot be rendered; images and Encapsulated PDF documents are rendered. Retrieve it as "
        "application/dicom or read its metadata instead"
    )


def _no_thumbnail_message(location: InstanceLocation) -> str:
    return (
        f"instance {location.sop_instance_uid} of SOP Class {_sop_class(location)} has no pixel data, "
        "so it has no thumbnail; only images have thumbnails"
    )


def choose_media_type(ranges: list[MediaRange], available: tuple[str, ...]) -> str:
    """Pick the first available media type that the accepted ranges cover.

    A range ``multipart/related; type="image/png"`` selects its type parameter. Ranges are
    tried in order of preference, and within a range the available types in their own order,
    so ``*/*`` and ``image/*`` select the first.

    Raises
    ------
    NotAcceptable
        When no accepted range covers an available media type.
    """
    for media_range in ranges:
        if media_range.media_type == media_types.MULTIPART_RELATED:
            inner = media_range.param("type")
            covered = parse_media_type(inner) if inner else None
            for media_type in available:
                if covered is None or covered.covers(media_type):
                    return media_type
            continue
        for media_type in available:
            if media_range.covers(media_type):
                return media_type
    offered = ", ".join(str(media_range) for media_range in ranges)
    raise NotAcceptable(
        f"none of the accepted media types ({offered}) can be produced; this resource is "
        f"available as {', '.join(available)}"
    )


def rendering_parameters(
    query: QueryParams, media_type: str, *, thumbnail: bool
) -> tuple[RenderingParameters, list[str]]:
    """Read the rendering parameters of PS3.18 8.3.5.1 from the query string.

    Returns the parameters and the warnings for parameters that are recognised but not applied.
    A thumbnail without a viewport fits in THUMBNAIL_SIZE pixels and is never enlarged.

    Raises
    ------
    InvalidRequest
        When window, viewport or quality is malformed; the message names the parameter.
    """
    try:
        window = parse_window(query["window"]) if "window" in query else None
        viewport = parse_viewport(query["viewport"]) if "viewport" in query else None
        quality = parse_quality(query["quality"]) if "quality" in query else DEFAULT_QUALITY
    except RenderingParameterError as error:
        raise InvalidRequest(str(error)) from error

    enlarge = True
    if thumbnail and viewport is None:
        viewport = Viewport(THUMBNAIL_SIZE, THUMBNAIL_SIZE)
        enlarge = False
    parameters = RenderingParameters(media_type, window, viewport, quality, enlarge)
    return parameters, unapplied_parameter_warnings(query)


def unapplied_parameter_warnings(query: QueryParams) -> list[str]:
    """Return a warning for each rendering parameter that is recognised but not applied.

    PS3.18 8.3.5.1 lets an origin server leave annotation and iccprofile unsupported, and
    PS3.18 8.3 has it ignore parameters it does not support. The warning informs the client.
    """
    warnings = []
    if query.get("annotation"):
        warnings.append("the annotation parameter is not supported; the image has no annotations")
    if query.get("iccprofile", "no").lower() != "no":
        warnings.append("the iccprofile parameter is not supported; no ICC profile is embedded")
    return warnings


def _warning_headers(warnings: list[str]) -> dict[str, str]:
    return {"Warning": warning_header(warnings)} if warnings else {}


class FrameRenderer:
    """Renders frames of one instance, reading the data set before the pixel data once.

    Frames are read by position when the instance has a pixel data layout. Otherwise (deflated
    or big endian data sets, some 1-bit images) the whole stored file is parsed for each frame.
    """

    def __init__(
        self, store: ObjectStore, location: InstanceLocation, route: str = "WADO-RS rendered"
    ) -> None:
        self._store = store
        self._location = location
        self._route = route
        self._header: Dataset | None = None

    async def render(self, number: int, parameters: RenderingParameters) -> bytes:
        """Render frame ``number`` (from 1) and return the encoded image.

        Raises
        ------
        NotAcceptable
            When the frame cannot be rendered (no decoder for its transfer syntax, or an
            unsupported Photometric Interpretation).
        InvalidRequest
            When the source image region of the viewport does not fit the image.
        """
        try:
            if self._location.pixel_layout is None:
                return await self._render_from_file(number, parameters)
            return await self._render_by_position(number, parameters)
        except RenderingParameterError as error:
            raise InvalidRequest(str(error)) from error
        except RenderingError as error:
            decode_failures.report(self._route, self._location.instance_key, error)
            raise NotAcceptable(
                f"instance {self._location.sop_instance_uid} cannot be rendered: {error}"
            ) from error

    async def _render_by_position(self, number: int, parameters: RenderingParameters) -> bytes:
        keyword, offset = self._pixel_element()
        if self._header is None:
            prefix = await self._store.read_range(self._location.object_key, 0, offset)
            self._header = await asyncio.to_thread(read_header, prefix)
        (frame,) = await read_frames(self._store, self._location, [number], native=False)
        return await asyncio.to_thread(
            _render_stored_frame, self._header, frame, self._location, keyword, number, parameters
        )

    async def _render_from_file(self, number: int, parameters: RenderingParameters) -> bytes:
        # NOTE: this path parses the whole stored file for every frame, so its memory follows
        # the size of the instance. It serves only deflated, big endian and some 1-bit files.
        async with local_copy(self._store, self._location.object_key) as path:
            dataset = await asyncio.to_thread(read_dataset, path)
            return await asyncio.to_thread(_render_dataset_frame, dataset, number, parameters)

    def _pixel_element(self) -> tuple[str, int]:
        """Return the keyword of the pixel data element and the position of its value."""
        for tag, keyword in PIXEL_DATA_KEYWORDS.items():
            known = self._location.bulkdata.get(f"{tag:08X}")
            if known is not None:
                return keyword, known.offset
        raise RenderingError("the position of the pixel data is not recorded")


def _render_stored_frame(
    header: Dataset,
    frame: bytes,
    location: InstanceLocation,
    keyword: str,
    number: int,
    parameters: RenderingParameters,
) -> bytes:
    layout = location.pixel_layout
    encapsulated = layout is not None and layout.encapsulated
    pixels = decode_stored_frame(header, frame, location.transfer_syntax_uid, encapsulated, keyword)
    return render_frame(header, pixels, number - 1, parameters)


def _render_dataset_frame(dataset: Dataset, number: int, parameters: RenderingParameters) -> bytes:
    pixels = decode_dataset_frame(dataset, number - 1)
    return render_frame(dataset, pixels, number - 1, parameters)


async def document_response(
    store: ObjectStore, location: InstanceLocation, ranges: list[MediaRange]
) -> Response:
    """Send the encapsulated document of an instance, such as the PDF of an Encapsulated PDF."""
    media_type = choose_media_type(ranges, (ENCAPSULATED_DOCUMENT_TYPES[location.sop_class_uid],))
    known = location.bulkdata.get(ENCAPSULATED_DOCUMENT_PATH)
    if known is not None and known.length != UNDEFINED_LENGTH:
        body = store.stream(location.object_key, known.offset, known.offset + known.length)
        return StreamingResponse(body, media_type=media_type)

    async with local_copy(store, location.object_key) as path:
        try:
            document = await asyncio.to_thread(read_encapsulated_document, path)
        except RenderingError as error:
            raise NotAcceptable(
                f"instance {location.sop_instance_uid} cannot be rendered: {error}"
            ) from error
    return Response(document, media_type=media_type)
