"""Reading admin API requests and writing their JSON responses.

Bodies are JSON objects of at most 1 MiB, sent with Content-Type application/json. Each handler
declares the fields it accepts, and a body with any other field is rejected: a misspelt
``study_instance_uid`` silently dropped would record an authorization that covers every study.
Errors name the field and the expected form. The error handler of the application turns them
into ``{"status", "message"}`` responses.
"""

from __future__ import annotations

import datetime
import difflib
from collections.abc import Collection
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from starlette.requests import Request
from starlette.responses import Response

from dicomweb_server.auth.identity import Requester
from dicomweb_server.consent import periods
from dicomweb_server.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType
from dicomweb_server.web.bodies import body_chunks
from dicomweb_server.web.context import request_time, requester, state

MAX_BODY_SIZE = 1024 * 1024


def json_response(data: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status_code, media_type="application/json")


CLI_OPTION_FIELDS = {
    "until": ("ends_at",),
    "from": ("starts_at",),
    "expires": ("expires_at",),
    "issuer": ("issuer_of_patient_id",),
    "org": ("organisations", "organisation"),
    "study": ("study_instance_uids",),
    "scope": ("scopes",),
    "at": ("declined_at",),
}
"""Options of the command line whose admin API field has another name, for the hint of an unknown field."""


async def json_body(request: Request, *, fields: Collection[str]) -> dict[str, Any]:
    """Return the request body as a JSON object whose keys are all among ``fields``.

    Raises
    ------
    UnsupportedMediaType
        When the Content-Type is not application/json.
    PayloadTooLarge
        When the body exceeds 1 MiB.
    RequestTimeout
        When the body stalls for longer than the body read timeout.
    InvalidRequest
        When the body is not a JSON object, or has a field outside ``fields``.
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise UnsupportedMediaType(
            f"unsupported Content-Type {content_type or '(none)'!r}; send the body as application/json"
        )
    body = bytearray()
    async for chunk in body_chunks(request):
        body += chunk
        if len(body) > MAX_BODY_SIZE:
            raise PayloadTooLarge(f"the body exceeds {MAX_BODY_SIZE} bytes; send a smaller JSON object")
    try:
        data = orjson.loads(body) if body else {}
    except orjson.JSONDecodeError as error:
        raise InvalidRequest(f"the body is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise InvalidRequest("the body must be a JSON object")
    check_fields(data, fields)
    return data


def check_fields(body: dict[str, Any], fields: Collection[str]) -> None:
    """Raise InvalidRequest naming the first field of ``body`` that is not in ``fields``."""
    unknown = [name for name in body if name not in fields]
    if not unknown:
        return
    name = unknown[0]
    accepted = ", ".join(fields) if fields else "none: send an empty body"
    raise InvalidRequest(
        f"unknown field {name!r}{_suggestion(name, fields)}; the accepted fields are {accepted}"
    )


def check_query_parameters(
    request: Request, accepted: Collection[str], renamed: dict[str, str] | None = None
) -> None:
    """Raise InvalidRequest naming the first query parameter that is not in ``accepted``.

    A filter that was silently ignored would return every entry as if it had been applied.
    ``renamed`` maps names used elsewhere (the command line's ``--from``, the usual ``offset``) to
    the accepted one, for the hint.
    """
    unknown = [name for name in request.query_params if name not in accepted]
    if not unknown:
        return
    name = unknown[0]
    if renamed and name in renamed:
        hint = f" (this resource calls it {renamed[name]!r})"
    else:
        close = difflib.get_close_matches(name, list(accepted), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
    listed = ", ".join(accepted) if accepted else "none"
    raise InvalidRequest(f"unknown query parameter {name!r}{hint}; the accepted parameters are {listed}")


def _suggestion(name: str, fields: Collection[str]) -> str:
    option = name.lower().lstrip("-")
    for renamed in CLI_OPTION_FIELDS.get(option, ()):
        if renamed in fields:
            return f" (the command line's --{option} is {renamed!r} here)"
    close = difflib.get_close_matches(name, list(fields), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def text_field(body: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidRequest(f"missing field {name!r}: give it as a string")
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"invalid field {name!r}: {value!r} is not a string")
    return value


def bool_field(body: dict[str, Any], name: str, default: bool = False) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise InvalidRequest(f"invalid field {name!r}: {value!r} is not true or false")
    return value


def text_list_field(body: dict[str, Any], name: str) -> tuple[str, ...]:
    value = body.get(name)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidRequest(f"invalid field {name!r}: give a list of strings")
    return tuple(value)


def instant_field(
    body: dict[str, Any], name: str, time_zone: ZoneInfo, *, end_of_day: bool
) -> datetime.datetime | None:
    text = text_field(body, name, required=False)
    if text is None:
        return None
    try:
        return periods.parse_instant(text, time_zone, end_of_day=end_of_day)
    except ValueError as error:
        raise InvalidRequest(f"invalid field {name!r}: {error}") from None


def acting(request: Request) -> Requester:
    return requester(request)


def now_of(request: Request) -> datetime.datetime:
    return request_time(request)


def time_zone_of(request: Request) -> ZoneInfo:
    return periods.zone(state(request).settings.time_zone)
