"""Admin API for patients' refusals to share: record, list by patient, show.

``POST /admin/api/refusals`` with ``{"patient_id", "issuer_of_patient_id", "reference", "note",
"declined_at"}`` records that the patient declined to authorize sharing; ``declined_at`` (a date
or an instant, default now) is when they declined. It is rejected with 409 while an
authorization of the patient has not ended.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from dicomweb_server.admin.requests import (
    acting,
    instant_field,
    json_body,
    json_response,
    now_of,
    text_field,
    time_zone_of,
)
from dicomweb_server.audit import EventAction, EventType, request_audit
from dicomweb_server.consent.refusals import get_refusal, list_refusals, record_refusal
from dicomweb_server.errors import InvalidRequest
from dicomweb_server.web.context import state


async def record_refusal_route(request: Request) -> Response:
    request_audit(request).describe(
        EventType.PATIENT_RECORD, "refusal.record", event_action=EventAction.CREATE
    )
    body = await json_body(
        request, fields=("patient_id", "issuer_of_patient_id", "reference", "note", "declined_at")
    )
    now = now_of(request)
    async with state(request).index.write() as connection:
        recorded = await record_refusal(
            connection,
            patient_id=text_field(body, "patient_id") or "",
            issuer_of_patient_id=text_field(body, "issuer_of_patient_id", required=False) or "",
            reference=text_field(body, "reference") or "",
            note=text_field(body, "note", required=False),
            declined_at=instant_field(body, "declined_at", time_zone_of(request), end_of_day=False),
            by=acting(request).describe(),
            now=now,
        )
    return json_response(recorded.to_json(), 201)


async def list_refusals_route(request: Request) -> Response:
    request_audit(request).describe(EventType.PATIENT_RECORD, "refusal.list", event_action=EventAction.READ)
    patient_id = request.query_params.get("patient_id")
    if not patient_id:
        raise InvalidRequest("missing query parameter patient_id; refusals are listed per patient")
    async with state(request).index.read() as connection:
        found = await list_refusals(connection, patient_id, request.query_params.get("issuer_of_patient_id"))
    return json_response([item.to_json() for item in found])


async def show_refusal_route(request: Request) -> Response:
    request_audit(request).describe(EventType.PATIENT_RECORD, "refusal.show", event_action=EventAction.READ)
    async with state(request).index.read() as connection:
        found = await get_refusal(connection, request.path_params["refusal_id"])
    return json_response(found.to_json())
