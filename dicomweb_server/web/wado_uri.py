"""WADO-URI: the URI Service of PS3.18 chapter 9, ``GET /wado?requestType=WADO&studyUID=…``.

The instance named by studyUID, seriesUID and objectUID is looked up through
``wado.find_visible`` with the requester's visibility, so a hidden instance gets the same 404
as a missing one. It is sent as application/dicom, rendered as an image, or, for an
Encapsulated PDF, sent as the PDF. The contentType parameter is the list of acceptable media
types. The Accept header is not consulted, because browsers and older viewers send one that
does not describe what the link requests.

Without contentType an image is rendered as image/jpeg, an Encapsulated PDF is sent as
application/pdf, and any other instance as application/dicom. Parameters the archive
recognises but does not apply (annotation, presentationUID, presentationSeriesUID) are named
in a Warning header. anonymize=yes is rejected, because ignoring it would send the patient's
identity to a client that requested its removal.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from dicomweb_server.audit import EventType, request_audit
from dicomweb_server.dicom import transfer
from dicomweb_server.dicom.render import ENCAPSULATED_DOCUMENT_TYPES
from dicomweb_server.dicom.render_parameters import (
    DEFAULT_QUALITY,
    MAX_RENDERED_SIDE,
    RENDERED_IMAGE_TYPES,
    NormalizedRegion,
    RenderingParameterError,
    RenderingParameters,
    Viewport,
    Window,
    parse_region,
)
from dicomweb_server.dicom.transfer import EXPLICIT_VR_LITTLE_ENDIAN
from dicomweb_server.dicom.uids import check_uid
from dicomweb_server.errors import InvalidRequest, NotAcceptable
from dicomweb_server.index.retrieve import InstanceLocation
from dicomweb_server.storage.store import ObjectStore
from dicomweb_server.web import media_types
from dicomweb_server.web.accept import ANY, MediaRange, parse_accept
from dicomweb_server.web.context import state
from dicomweb_server.web.decode_failures import decode_failures
from dicomweb_server.web.rendered import (
    FrameRenderer,
    check_frame_numbers,
    choose_media_type,
    document_response,
    has_pixel_data,
)
from dicomweb_server.web.responses import warning_header
from dicomweb_server.web.wado import INSTANCE_LEVEL, find_visible, local_copy

WADO_URI_PATH = "/wado"
"""Path of the URI Service, outside the DICOMweb root."""

REQUEST_TYPE = "WADO"
IDENTITY_PARAMETERS = {
    "studyUID": "study_instance_uid",
    "seriesUID": "series_instance_uid",
    "objectUID": "sop_instance_uid",
}
"""The UID parameters of a WADO-URI request and the path parameters they map to."""

RENDERING_PARAMETERS = (
    "annotation",
    "rows",
    "columns",
    "region",
    "windowCenter",
    "windowWidth",
    "frameNumber",
    "imageQuality",
    "quality",
    "presentationUID",
    "presentationSeriesUID",
)
"""Parameters that PS3.18 allows only for rendered images, not with contentType=application/dicom.

``quality`` is accepted as another name for imageQuality, the spelling of the rendered
resources of WADO-RS.
"""

UNAPPLIED_PARAMETERS = ("annotation", "presentationUID", "presentationSeriesUID")


@dataclass(frozen=True)
class WadoUriRequest:
    """The parameters of one WADO-URI request, checked for form but not yet against the instance."""

    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    content_types: list[MediaRange]
    transfer_syntax_uid: str | None
    frame_number: int | None
    viewport: Viewport | None
    window: Window | None
    quality: int
    rendering_parameters: tuple[str, ...]
    """The rendering parameters present in the request, by name."""


async def retrieve_wado_uri(request: Request) -> Response:
    """Retrieve the instance of a WADO-URI request as application/dicom, a rendered image or a PDF."""
    audit = request_audit(request)
    audit.describe(EventType.INSTANCES_ACCESSED, "RetrieveWadoUri", level="instance", discloses=True)
    parsed = parse_wado_uri(request.query_params)
    location = await _find_instance(request, parsed)
    media_type = _choose_content_type(parsed, location)
    store = state(request).store

    if media_type == media_types.DICOM:
        audit.describe(EventType.BEGIN_TRANSFERRING, "RetrieveWadoUri", level="instance", discloses=True)
        _reject_with_dicom(parsed)
        return await _dicom_response(store, location, parsed.transfer_syntax_uid)
    if parsed.transfer_syntax_uid is not None:
        raise InvalidRequest(
            f"transferSyntax applies only to contentType=application/dicom, not to {media_type}; "
            "remove transferSyntax or ask for application/dicom"
        )
    if media_type not in RENDERED_IMAGE_TYPES:
        return await document_response(store, location, parsed.content_types or [ANY])

    frame_number = parsed.frame_number or 1
    check_frame_numbers(location, [frame_number], InvalidRequest)
    parameters = RenderingParameters(media_type, parsed.window, parsed.viewport, parsed.quality)
    body = await FrameRenderer(store, location, "WADO-URI").render(frame_number, parameters)
    return Response(body, media_type=media_type, headers=_warnings(request.query_params))


def parse_wado_uri(query: QueryParams) -> WadoUriRequest:
    """Check the parameters of a WADO-URI request (PS3.18 9.1.2 and 9.4).

    Raises
    ------
    InvalidRequest
        When requestType is not WADO, a UID is missing or malformed, or a parameter value is
        malformed; the message names the parameter and the rule.
    """
    _check_request_type(query)
    uids = _identity_uids(query)
    if query.get("anonymize", "").lower() == "yes":
        raise InvalidRequest("anonymize=yes is not supported; this archive sends instances as stored")

    try:
        region = parse_region(query["region"]) if "region" in query else None
    except RenderingParameterError as error:
        raise InvalidRequest(str(error)) from error
    return WadoUriRequest(
        *uids,
        content_types=_content_types(query),
        transfer_syntax_uid=_transfer_syntax(query),
        frame_number=_integer(query, "frameNumber", 1),
        viewport=_viewport(query, region),
        window=_window(query),
        quality=_quality(query),
        rendering_parameters=tuple(name for name in RENDERING_PARAMETERS if name in query),
    )


def _check_request_type(query: QueryParams) -> None:
    request_type = query.get("requestType")
    if request_type is None:
        raise InvalidRequest("requestType is missing; a WADO-URI request needs requestType=WADO")
    if request_type != REQUEST_TYPE:
        raise InvalidRequest(f"requestType {request_type!r} is not supported; use requestType=WADO")


def _identity_uids(query: QueryParams) -> tuple[str, str, str]:
    missing = [name for name in IDENTITY_PARAMETERS if not query.get(name)]
    if missing:
        raise InvalidRequest(
            f"{', '.join(missing)} missing; a WADO-URI request names the instance with studyUID, "
            "seriesUID and objectUID"
        )
    values = []
    for name in IDENTITY_PARAMETERS:
        value = query[name].strip()
        check = check_uid(value)
        if not check.usable:
            raise InvalidRequest(f"{name} value {value!r} is not a valid UID: {check.reason}")
        values.append(value)
    return values[0], values[1], values[2]


def _content_types(query: QueryParams) -> list[MediaRange]:
    text = ",".join(query.getlist("contentType"))
    if not text.strip():
        return []
    try:
        return parse_accept(text)
    except InvalidRequest as error:
        raise InvalidRequest(f"invalid contentType {text!r}: {error.message}") from error


def _transfer_syntax(query: QueryParams) -> str | None:
    """Read transferSyntax, rejecting a value that is not a transfer syntax UID (PS3.18 9.4.2.4)."""
    value = query.get("transferSyntax")
    if value is None:
        return None
    value = value.strip()
    check = check_uid(value)
    if not check.usable:
        raise InvalidRequest(f"transferSyntax value {value!r} is not a valid UID: {check.reason}")
    if transfer.lookup(value) is None:
        raise InvalidRequest(
            f"transferSyntax value {value!r} is not a transfer syntax UID; give one such as "
            f"{EXPLICIT_VR_LITTLE_ENDIAN} (Explicit VR Little Endian)"
        )
    return value


def _integer(query: QueryParams, name: str, minimum: int, maximum: int | None = None) -> int | None:
    text = query.get(name)
    if text is None:
        return None
    try:
        value = int(text.strip())
    except ValueError:
        value = minimum - 1
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"from {minimum} to {maximum}" if maximum is not None else f"of at least {minimum}"
        raise InvalidRequest(f"invalid {name} {text!r}; give an integer {bound}")
    return value


def _viewport(query: QueryParams, region: NormalizedRegion | None) -> Viewport | None:
    """Combine rows, columns and region. Rows and columns are maximums that keep the aspect ratio."""
    rows = _integer(query, "rows", 1, MAX_RENDERED_SIDE)
    columns = _integer(query, "columns", 1, MAX_RENDERED_SIDE)
    if rows is None and columns is None and region is None:
        return None
    return Viewport(columns, rows, region)


def _window(query: QueryParams) -> Window | None:
    center_text, width_text = query.get("windowCenter"), query.get("windowWidth")
    if center_text is None and width_text is None:
        return None
    if center_text is None or width_text is None:
        raise InvalidRequest("windowCenter and windowWidth go together; give both or neither")
    center, width = _decimal(center_text, "windowCenter"), _decimal(width_text, "windowWidth")
    if width < 1:
        raise InvalidRequest(f"invalid windowWidth {width_text!r}; a window width is at least 1")
    return Window(center, width)


def _decimal(text: str, name: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise InvalidRequest(f"invalid {name} {text!r}; give a decimal number") from None


def _quality(query: QueryParams) -> int:
    for name in ("imageQuality", "quality"):
        quality = _integer(query, name, 1, 100)
        if quality is not None:
            return quality
    return DEFAULT_QUALITY


async def _find_instance(request: Request, parsed: WadoUriRequest) -> InstanceLocation:
    # find_visible reads the UIDs from the path parameters, but a WADO-URI request carries them
    # in its query. They are placed where every other retrieval form has them.
    request.scope["path_params"] = {
        "study_instance_uid": parsed.study_instance_uid,
        "series_instance_uid": parsed.series_instance_uid,
        "sop_instance_uid": parsed.sop_instance_uid,
    }
    (location,) = await find_visible(request, INSTANCE_LEVEL)
    return location


def _available_types(location: InstanceLocation) -> tuple[str, ...]:
    """Return the media types an instance can be sent in, its default first."""
    if has_pixel_data(location):
        return (*RENDERED_IMAGE_TYPES, media_types.DICOM)
    document_type = ENCAPSULATED_DOCUMENT_TYPES.get(location.sop_class_uid)
    if document_type is not None:
        return document_type, media_types.DICOM
    return (media_types.DICOM,)


def _choose_content_type(parsed: WadoUriRequest, location: InstanceLocation) -> str:
    available = _available_types(location)
    if not parsed.content_types:
        return available[0]
    return choose_media_type(parsed.content_types, available)


def _reject_with_dicom(parsed: WadoUriRequest) -> None:
    if parsed.rendering_parameters:
        raise InvalidRequest(
            f"{', '.join(parsed.rendering_parameters)} cannot be used with contentType=application/dicom; "
            "they apply only to rendered images"
        )


def _warnings(query: QueryParams) -> dict[str, str]:
    unapplied = [name for name in UNAPPLIED_PARAMETERS if query.get(name)]
    if not unapplied:
        return {}
    return {"Warning": warning_header([f"{name} is not supported and was not applied" for name in unapplied])}


async def _dicom_response(store: ObjectStore, location: InstanceLocation, requested: str | None) -> Response:
    """Send the instance in the requested transfer syntax, by default Explicit VR Little Endian.

    A valid transfer syntax that cannot be produced gets 406 (PS3.18 9.4.2.4).
    """
    syntax = requested or EXPLICIT_VR_LITTLE_ENDIAN
    available = transfer.instance_syntaxes(location.transfer_syntax_uid, has_pixel_data(location))
    if syntax not in available:
        raise NotAcceptable(
            f"instance {location.sop_instance_uid} cannot be sent in {transfer.describe(syntax)}; it is "
            f"available in {', '.join(transfer.describe(uid) for uid in available)}"
        )
    if syntax == location.transfer_syntax_uid:
        return StreamingResponse(store.stream(location.object_key), media_type=media_types.DICOM)

    async with local_copy(store, location.object_key) as path:
        try:
            converted = await asyncio.to_thread(transfer.to_explicit_vr_little_endian, path)
        except Exception as error:  # noqa: BLE001 - stored pixel data that fails to decode is reported
            decode_failures.report("WADO-URI", location.instance_key, error)
            raise NotAcceptable(
                f"instance {location.sop_instance_uid} cannot be converted to "
                f"{transfer.describe(syntax)}: {error}; ask for transferSyntax={location.transfer_syntax_uid}"
            ) from error
    return Response(converted, media_type=media_types.DICOM)
