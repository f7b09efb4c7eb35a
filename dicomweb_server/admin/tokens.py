"""Admin API for API tokens: list, create (the token is in that response only) and revoke."""

from __future__ import annotations

import datetime

from starlette.requests import Request
from starlette.responses import Response

from dicomweb_server.admin.requests import (
    acting,
    instant_field,
    json_body,
    json_response,
    now_of,
    text_field,
    text_list_field,
    time_zone_of,
)
from dicomweb_server.auth.identity import Scope, parse_scopes
from dicomweb_server.auth.organisations import get_organisation
from dicomweb_server.auth.tokens import issue_token, list_tokens, revoke_token
from dicomweb_server.errors import InvalidRequest
from dicomweb_server.web.context import state


async def list_tokens_route(request: Request) -> Response:
    now = now_of(request)
    async with state(request).index.read() as connection:
        found = await list_tokens(connection, request.query_params.get("organisation"))
    return json_response([item.to_json(now) for item in found])


async def create_token_route(request: Request) -> Response:
    """Issue a token: ``{"organisation": "...", "scopes": ["read"], "expires_at": "2027-03-01"}``.

    ``expires_at`` is optional (the configured lifetime applies); a date alone means the end of
    that day in the configured time zone. The response contains the token; it is not shown again.
    """
    body = await json_body(request, fields=("organisation", "scopes", "expires_at"))
    now = now_of(request)
    settings = state(request).settings
    scopes = _scopes(text_list_field(body, "scopes"))
    expires_at = instant_field(body, "expires_at", time_zone_of(request), end_of_day=True)
    expires_at = expires_at or now + datetime.timedelta(days=settings.token_lifetime_days)
    async with state(request).index.write() as connection:
        owner = await get_organisation(connection, text_field(body, "organisation") or "")
        issued = await issue_token(
            connection, owner, scopes, expires_at=expires_at, by=acting(request).describe(), now=now
        )
    return json_response({"token": issued.token, **issued.info.to_json(now)}, 201)


def _scopes(names: tuple[str, ...]) -> frozenset[Scope]:
    try:
        return parse_scopes(" ".join(names))
    except ValueError as error:
        raise InvalidRequest(f"invalid field 'scopes': {error}") from None


async def revoke_token_route(request: Request) -> Response:
    now = now_of(request)
    async with state(request).index.write() as connection:
        revoked = await revoke_token(
            connection, request.path_params["token_id"], by=acting(request).describe(), now=now
        )
    return json_response(revoked.to_json(now))
