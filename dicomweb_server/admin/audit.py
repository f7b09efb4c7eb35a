"""Admin API for the audit trail: list and show entries, export them, verify the chain.

- ``GET /admin/api/audit/entries``: entries in chain order, filtered by ``since`` and ``until``,
  each a date (a day in the configured time zone) or an instant with its UTC offset. ``until``
  is exclusive for an instant and includes the whole day for a date. The other filters are
  ``event_type``, ``subject``, ``organisation``, ``request_id``, ``patient_id`` (with
  ``issuer_of_patient_id``) and ``study_instance_uid``. Pages follow ``after`` (the last
  sequence seen) and ``limit`` (at most 1000). The response is ``{"entries": [...],
  "next_after": N or null}``. Any other query parameter is rejected, so that a misspelt filter
  (the command line's ``from``) never returns every entry unnoticed.
- ``GET /admin/api/audit/entries/{event_id}`` as JSON; ``.../dicom`` as a DICOM audit message
  (PS3.15 A.5.1, application/xml); ``.../fhir`` as a FHIR R4 AuditEvent.
- ``GET /admin/api/audit/export``: the filtered entries as a FHIR Bundle (``format=fhir``) or as
  DICOM audit messages, one XML document per line (``format=dicom``), a page of ``limit`` at a
  time. A full page has a ``Link: <URL>; rel="next"`` header, and the Bundle a ``next`` link.
- ``GET /admin/api/audit/verify``: check the hash chain; ``anchor=SEQUENCE:HASH`` also checks an
  entry noted earlier. The response states whether it is valid and names the first entry that
  does not fit.

Every one of these requests is itself recorded as an ``audit-log-used`` entry.
"""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from dicomweb_server.admin.requests import check_query_parameters, json_response, time_zone_of
from dicomweb_server.audit import EventType, request_audit, verify_chain
from dicomweb_server.audit.chain import parse_anchor
from dicomweb_server.audit.entries import MAX_LIMIT, EntryFilter, find_entries, get_entry
from dicomweb_server.audit.exports import dicom_audit_message, fhir_audit_event, fhir_bundle
from dicomweb_server.consent import periods
from dicomweb_server.errors import InvalidRequest
from dicomweb_server.web.context import state
from dicomweb_server.web.urls import base_url

FHIR_JSON = "application/fhir+json"
EXPORT_FORMATS = ("fhir", "dicom")
FILTER_PARAMETERS = (
    "since",
    "until",
    "event_type",
    "subject",
    "organisation",
    "request_id",
    "patient_id",
    "issuer_of_patient_id",
    "study_instance_uid",
    "after",
    "limit",
)
OTHER_PARAMETER_NAMES = {"from": "since", "to": "until", "offset": "after"}
MAX_SEQUENCE = 2**63 - 1
"""Largest sequence number a BIGINT column holds; ``after`` beyond it would make the database fail."""


def _describe(request: Request, action: str) -> None:
    request_audit(request).describe(EventType.AUDIT_LOG_USED, action)


def entry_filter(request: Request) -> EntryFilter:
    """Read the entry filter from the query string; the errors name the parameter."""
    query = request.query_params
    zone = time_zone_of(request)
    event_type = query.get("event_type")
    if event_type is not None and event_type not in {item.value for item in EventType}:
        known = ", ".join(item.value for item in EventType)
        raise InvalidRequest(f"invalid query parameter 'event_type': {event_type!r}; use one of {known}")
    bounds = {}
    for name, end_of_day in (("since", False), ("until", True)):
        text = query.get(name)
        if text is None:
            continue
        try:
            bounds[name] = periods.parse_instant(text, zone, end_of_day=end_of_day)
        except ValueError as error:
            raise InvalidRequest(f"invalid query parameter {name!r}: {error}") from None
    return EntryFilter(
        since=bounds.get("since"),
        until=bounds.get("until"),
        event_type=event_type,
        subject=query.get("subject"),
        organisation=query.get("organisation"),
        request_id=query.get("request_id"),
        patient_id=query.get("patient_id"),
        issuer_of_patient_id=query.get("issuer_of_patient_id"),
        study_instance_uid=query.get("study_instance_uid"),
        after=_integer(request, "after", 0, 0, MAX_SEQUENCE),
        limit=_integer(request, "limit", 100, 1, MAX_LIMIT),
    )


def _integer(request: Request, name: str, default: int, minimum: int, maximum: int | None = None) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    if not text.isdigit() or int(text) < minimum or (maximum is not None and int(text) > maximum):
        bound = f"from {minimum} to {maximum}" if maximum is not None else f"of at least {minimum}"
        raise InvalidRequest(f"invalid query parameter {name!r}: {text!r}; give an integer {bound}")
    return int(text)


async def list_entries_route(request: Request) -> Response:
    _describe(request, "audit.list")
    check_query_parameters(request, FILTER_PARAMETERS, OTHER_PARAMETER_NAMES)
    where = entry_filter(request)
    async with state(request).index.read() as connection:
        found = await find_entries(connection, where)
    next_after = found[-1].sequence if len(found) == where.limit else None
    return json_response({"entries": [item.to_json() for item in found], "next_after": next_after})


async def show_entry_route(request: Request) -> Response:
    _describe(request, "audit.show")
    async with state(request).index.read() as connection:
        found = await get_entry(connection, request.path_params["event_id"])
    return json_response(found.to_json())


async def show_dicom_entry_route(request: Request) -> Response:
    """Show an entry as a DICOM audit message (PS3.15 A.5.1)."""
    _describe(request, "audit.show")
    async with state(request).index.read() as connection:
        found = await get_entry(connection, request.path_params["event_id"])
    return Response(dicom_audit_message(found.content), media_type="application/xml")


async def show_fhir_entry_route(request: Request) -> Response:
    """Show an entry as a FHIR R4 AuditEvent."""
    _describe(request, "audit.show")
    async with state(request).index.read() as connection:
        found = await get_entry(connection, request.path_params["event_id"])
    return Response(orjson.dumps(fhir_audit_event(found.content)), media_type=FHIR_JSON)


async def export_entries_route(request: Request) -> Response:
    """Export the filtered entries as a FHIR Bundle or as DICOM audit messages, one per line."""
    _describe(request, "audit.export")
    check_query_parameters(request, (*FILTER_PARAMETERS, "format"), OTHER_PARAMETER_NAMES)
    export_format = request.query_params.get("format", "fhir")
    if export_format not in EXPORT_FORMATS:
        raise InvalidRequest(f"invalid format {export_format!r}; use {' or '.join(EXPORT_FORMATS)}")
    where = entry_filter(request)
    async with state(request).index.read() as connection:
        found = await find_entries(connection, where)
    next_url = _next_page_url(request, found[-1].sequence) if len(found) == where.limit else None
    headers = {"Link": f'<{next_url}>; rel="next"'} if next_url else None
    if export_format == "dicom":
        lines = "".join(dicom_audit_message(item.content) + "\n" for item in found)
        return Response(lines, media_type="text/plain; charset=utf-8", headers=headers)
    bundle = fhir_bundle([item.content for item in found])
    if next_url:
        bundle["link"] = [{"relation": "next", "url": next_url}]
    return Response(orjson.dumps(bundle), media_type=FHIR_JSON, headers=headers)


def _next_page_url(request: Request, last_sequence: int) -> str:
    """Return the URL of the export page after the entry ``last_sequence``, with the same filters."""
    query = request.url.include_query_params(after=last_sequence).query
    return f"{base_url(request)}/admin/api/audit/export?{query}"


async def verify_route(request: Request) -> Response:
    """Check the chain; ``anchor=SEQUENCE:HASH`` also checks an entry noted earlier."""
    _describe(request, "audit.verify")
    check_query_parameters(request, ("anchor",))
    anchor = parse_anchor(request.query_params.get("anchor"))
    async with state(request).index.read() as connection:
        result = await verify_chain(connection, anchor)
    return json_response(result.to_json())
