"""Admin API for instances external organisations stored: list, show, accept and reject."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from dicomweb_server.admin.requests import acting, json_body, json_response, now_of, text_field
from dicomweb_server.consent import quarantine
from dicomweb_server.web.context import state


async def list_quarantine_route(request: Request) -> Response:
    """List quarantined instances; ``status`` is held (default), accepted, rejected or all."""
    status = request.query_params.get("status", quarantine.HELD)
    async with state(request).index.read() as connection:
        found = await quarantine.list_quarantine(
            connection,
            status=None if status == "all" else status,
            organisation_name=request.query_params.get("organisation"),
            study_instance_uid=request.query_params.get("study_instance_uid"),
        )
    return json_response([item.to_json() for item in found])


async def show_quarantined_route(request: Request) -> Response:
    async with state(request).index.read() as connection:
        found = await quarantine.get_quarantined(connection, request.path_params["quarantine_id"])
    return json_response(found.to_json())


async def accept_quarantined_route(request: Request) -> Response:
    """Accept a held instance (optional body ``{"note": "..."}``); it becomes visible like any stored one."""
    note = await _note(request)
    app = state(request)
    accepted = await quarantine.accept(
        app.index,
        app.store,
        request.path_params["quarantine_id"],
        by=acting(request).describe(),
        note=note,
        now=now_of(request),
    )
    return json_response(accepted.to_json())


async def reject_quarantined_route(request: Request) -> Response:
    """Reject a held instance (optional body ``{"note": "..."}``); its object is deleted."""
    note = await _note(request)
    app = state(request)
    rejected = await quarantine.reject(
        app.index,
        app.store,
        request.path_params["quarantine_id"],
        by=acting(request).describe(),
        note=note,
        now=now_of(request),
    )
    return json_response(rejected.to_json())


async def _note(request: Request) -> str | None:
    if not request.headers.get("content-type"):
        return None
    return text_field(await json_body(request, fields=("note",)), "note", required=False)
