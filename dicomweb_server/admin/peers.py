"""Admin API for peers: list, add, show, remove and test. No response contains a peer's secret."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from dicomweb_server.admin.requests import (
    acting,
    json_body,
    json_response,
    now_of,
    text_field,
    text_list_field,
)
from dicomweb_server.errors import DependencyUnavailable, InvalidRequest
from dicomweb_server.federation.client import probe_peer
from dicomweb_server.federation.credentials import PeerAccess
from dicomweb_server.federation.peers import (
    DEFAULT_TIMEOUT,
    NewPeer,
    add_peer,
    get_peer,
    list_peers,
    remove_peer,
)
from dicomweb_server.federation.sealing import SealError, load_peer_key
from dicomweb_server.web.context import state


async def list_peers_route(request: Request) -> Response:
    async with state(request).index.read() as connection:
        found = await list_peers(connection)
    return json_response([item.to_json() for item in found])


def _timeout(body: dict[str, Any]) -> float:
    value = body.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequest(f"invalid field 'timeout': {value!r} is not a number of seconds")
    return float(value)


PEER_FIELDS = (
    "name",
    "url",
    "token",
    "client_id",
    "client_secret",
    "token_url",
    "scopes",
    "as_organisation",
    "ca_bundle",
    "client_certificate",
    "client_key",
    "timeout",
)


def new_peer(body: dict[str, Any]) -> NewPeer:
    """Read a new peer from a JSON body; ``add_peer`` checks the values."""
    return NewPeer(
        name=text_field(body, "name") or "",
        url=text_field(body, "url") or "",
        token=text_field(body, "token", required=False),
        client_id=text_field(body, "client_id", required=False),
        client_secret=text_field(body, "client_secret", required=False),
        token_url=text_field(body, "token_url", required=False),
        oauth_scopes=text_list_field(body, "scopes"),
        as_organisation=text_field(body, "as_organisation", required=False),
        ca_bundle=text_field(body, "ca_bundle", required=False),
        client_certificate=text_field(body, "client_certificate", required=False),
        client_key=text_field(body, "client_key", required=False),
        timeout=_timeout(body),
    )


async def add_peer_route(request: Request) -> Response:
    """Register a peer: ``{"name", "url", "token"}`` or ``{"name", "url", "client_id", "client_secret",
    "token_url", "scopes"}``, with optional ``as_organisation``, ``ca_bundle``, ``client_certificate``,
    ``client_key`` and ``timeout`` (seconds). The response describes the peer without its secret.
    """
    body = await json_body(request, fields=PEER_FIELDS)
    new = new_peer(body)
    try:
        key = load_peer_key(state(request).settings, create=True)
    except SealError as error:
        raise DependencyUnavailable(str(error)) from None
    async with state(request).index.write() as connection:
        added = await add_peer(connection, new, key, by=acting(request).describe(), now=now_of(request))
    return json_response(added.to_json(), 201)


async def show_peer_route(request: Request) -> Response:
    async with state(request).index.read() as connection:
        found = await get_peer(connection, request.path_params["name"])
    return json_response(found.to_json())


async def remove_peer_route(request: Request) -> Response:
    """Remove a peer and its stored secret."""
    async with state(request).index.write() as connection:
        removed = await remove_peer(connection, request.path_params["name"])
    return json_response(removed.to_json())


async def test_peer_route(request: Request) -> Response:
    """Search the peer for one study and return the latency and, on failure, the first error."""
    async with state(request).index.read() as connection:
        found = await get_peer(connection, request.path_params["name"])
    try:
        access = PeerAccess.open(found, load_peer_key(state(request).settings, create=False))
    except SealError as error:
        raise DependencyUnavailable(str(error)) from None
    result = await probe_peer(access)
    return json_response(
        {
            "name": found.name,
            "ok": result.ok,
            "latency_ms": round(result.elapsed * 1000),
            "results": result.results,
            "error": result.error,
        }
    )
