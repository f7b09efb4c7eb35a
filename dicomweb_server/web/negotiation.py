"""Choosing a response representation from the media ranges a client accepts (PS3.18 8.7)."""

from __future__ import annotations

from dicomweb_server.errors import NotAcceptable
from dicomweb_server.web import media_types
from dicomweb_server.web.accept import MediaRange

JSON_TYPES = (media_types.DICOM_JSON, media_types.JSON)


def require_json(ranges: list[MediaRange]) -> str:
    """Return the JSON media type to answer a search or metadata request with.

    application/dicom+json is sent unless only application/json is accepted.

    Raises
    ------
    NotAcceptable
        When no accepted range covers DICOM JSON; DICOM XML is not produced.
    """
    for media_range in ranges:
        for media_type in JSON_TYPES:
            if media_range.covers(media_type):
                return media_type
    offered = ", ".join(str(media_range) for media_range in ranges)
    raise NotAcceptable(
        f"none of the accepted media types ({offered}) can be produced; this resource is "
        "available as application/dicom+json or application/json (DICOM XML is not supported)"
    )
