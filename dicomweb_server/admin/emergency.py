"""Admin API for emergency access: open (emergency scope), list and close.

``POST /admin/api/emergency-access`` with ``{"patient_id", "issuer_of_patient_id", "reason",
"minutes"}`` opens access to that patient's studies for the token's user; ``minutes`` may
shorten the configured time, never lengthen it. Admins list and close every access; a user
with the emergency scope lists and closes their own.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from dicomweb_server.admin.requests import acting, json_body, json_response, now_of
from dicomweb_server.auth.identity import Scope
from dicomweb_server.consent.emergency import (
    close_emergency_access,
    list_emergency_access,
    open_emergency_access,
)
from dicomweb_server.errors import Forbidden, InvalidRequest
from dicomweb_server.web.context import state


async def open_emergency_access_route(request: Request) -> Response:
    body = await json_body(request, fields=("patient_id", "issuer_of_patient_id", "reason", "minutes"))
    configured = state(request).settings.emergency_access_minutes
    minutes = body.get("minutes", configured)
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= configured:
        raise InvalidRequest(
            f"invalid field 'minutes': {minutes!r}; give a whole number from 1 to {configured}"
        )
    async with state(request).index.write() as connection:
        opened = await open_emergency_access(
            connection,
            acting(request),
            patient_id=body.get("patient_id"),
            issuer_of_patient_id=body.get("issuer_of_patient_id"),
            reason=body.get("reason"),
            minutes=minutes,
            now=now_of(request),
        )
    return json_response(opened.to_json(), 201)


async def list_emergency_access_route(request: Request) -> Response:
    """List emergency accesses; ``open=true`` keeps those still open."""
    open_only = request.query_params.get("open", "false").lower() == "true"
    async with state(request).index.read() as connection:
        found = await list_emergency_access(
            connection, acting(request), now=now_of(request), open_only=open_only
        )
    return json_response([item.to_json() for item in found])


async def close_emergency_access_route(request: Request) -> Response:
    sender = acting(request)
    if not (sender.has_scope(Scope.EMERGENCY) or sender.has_scope(Scope.ADMIN)):
        raise Forbidden("closing emergency access needs the emergency or admin scope")
    async with state(request).index.write() as connection:
        closed = await close_emergency_access(
            connection, request.path_params["access_id"], sender, now=now_of(request)
        )
    return json_response(closed.to_json())
