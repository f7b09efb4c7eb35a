"""Admin API for organisations: list, add, show and delete."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from dicomweb_server.admin.requests import acting, bool_field, json_body, json_response, now_of, text_field
from dicomweb_server.auth.organisations import (
    add_organisation,
    delete_organisation,
    get_organisation,
    list_organisations,
)
from dicomweb_server.errors import InvalidRequest
from dicomweb_server.web.context import state


async def list_organisations_route(request: Request) -> Response:
    include_deleted = request.query_params.get("include_deleted", "false").lower() == "true"
    async with state(request).index.read() as connection:
        found = await list_organisations(connection, include_deleted=include_deleted)
    return json_response([item.to_json() for item in found])


async def add_organisation_route(request: Request) -> Response:
    """Register an organisation: ``{"name": "...", "affiliated": false}``."""
    body = await json_body(request, fields=("name", "affiliated"))
    name = text_field(body, "name") or ""
    if "affiliated" not in body:
        raise InvalidRequest(
            "missing field 'affiliated': true for the archive's own organisation, false otherwise"
        )
    affiliated = bool_field(body, "affiliated")
    async with state(request).index.write() as connection:
        added = await add_organisation(
            connection, name, affiliated=affiliated, by=acting(request).describe(), now=now_of(request)
        )
    return json_response(added.to_json(), 201)


async def show_organisation_route(request: Request) -> Response:
    async with state(request).index.read() as connection:
        found = await get_organisation(connection, request.path_params["name"])
    return json_response(found.to_json())


async def delete_organisation_route(request: Request) -> Response:
    """Delete an organisation; its tokens stop working at once."""
    async with state(request).index.write() as connection:
        deleted = await delete_organisation(
            connection, request.path_params["name"], by=acting(request).describe(), now=now_of(request)
        )
    return json_response(deleted.to_json())
