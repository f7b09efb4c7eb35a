"""The Authorization header this archive sends to a peer: its bearer token, or an OAuth 2.0 access token.

For OAuth 2.0 client credentials (RFC 6749 4.4) the archive requests an access token from the
peer's token endpoint. It authenticates with HTTP Basic, which every token endpoint must support
(RFC 6749 2.3.1), and keeps the token in memory until shortly before it expires. Tokens are
never written to the index or to logs.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from dicomweb_server.federation.errors import PeerError
from dicomweb_server.federation.peers import Authentication, Peer
from dicomweb_server.federation.sealing import PeerKey
from dicomweb_server.federation.transport import describe_status, http_client, peer_failure

logger = logging.getLogger(__name__)

DEFAULT_LIFETIME = 60.0
"""Seconds an access token is kept when the token endpoint does not say when it expires."""

MAX_REFRESH_MARGIN = 60.0

MAX_TOKEN_RESPONSE_BYTES = 64 * 1024
"""Largest token endpoint response read. A token response is a small JSON object, and a JWT
access token of a few kilobytes is large, so more comes from a broken endpoint."""


@dataclass(frozen=True)
class PeerAccess:
    """A peer with its credential opened for one use; never stored or logged."""

    peer: Peer
    secret: str = field(repr=False)

    @classmethod
    def open(cls, peer: Peer, key: PeerKey) -> PeerAccess:
        """Open the sealed credential of ``peer`` (raises ``SealError`` when it does not open)."""
        return cls(peer, key.open(peer.sealed_secret, peer.name))


@dataclass
class _CachedToken:
    value: str = field(repr=False)
    refresh_at: float


class AccessTokens:
    """OAuth 2.0 access tokens of the peers, each kept until shortly before it expires."""

    def __init__(self) -> None:
        self._tokens: dict[str, _CachedToken] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def headers(self, access: PeerAccess) -> dict[str, str]:
        """Return the Authorization header for a request to the peer.

        Raises
        ------
        PeerError
            When the token endpoint fails or refuses the client credentials.
        """
        if access.peer.authentication is Authentication.BEARER:
            return {"Authorization": f"Bearer {access.secret}"}
        return {"Authorization": f"Bearer {await self.access_token(access)}"}

    async def access_token(self, access: PeerAccess) -> str:
        cache_key = _cache_key(access)
        cached = self._tokens.get(cache_key)
        if cached is not None and time.monotonic() < cached.refresh_at:
            return cached.value
        lock = self._locks.setdefault(cache_key, asyncio.Lock())
        async with lock:
            cached = self._tokens.get(cache_key)
            if cached is not None and time.monotonic() < cached.refresh_at:
                return cached.value
            fetched = await _fetch(access)
            self._tokens[cache_key] = fetched
            return fetched.value

    def forget(self, access: PeerAccess) -> None:
        """Drop the cached token of a peer, so that the next request fetches a new one."""
        self._tokens.pop(_cache_key(access), None)


ACCESS_TOKENS = AccessTokens()
"""The process's cache; each server replica fetches its own tokens."""


def _cache_key(access: PeerAccess) -> str:
    # The sealed secret changes with every registration (its nonce is random), so a peer removed
    # and added again under the same name never reuses the old peer's token.
    return hashlib.sha256(f"{access.peer.name}\n{access.peer.sealed_secret}".encode()).hexdigest()


async def _fetch(access: PeerAccess) -> _CachedToken:
    peer = access.peer
    assert peer.token_url is not None and peer.client_id is not None
    data = {"grant_type": "client_credentials"}
    if peer.oauth_scopes:
        data["scope"] = " ".join(peer.oauth_scopes)
    request_headers = {"Accept": "application/json"}
    try:
        # The client's timeout bounds each read only, and a retrieval has no deadline of its own,
        # so an endpoint that sends its response slowly would hold every request to this peer.
        async with http_client(peer) as client, asyncio.timeout(peer.timeout):
            request = client.build_request("POST", peer.token_url, data=data, headers=request_headers)
            response = await client.send(request, auth=(peer.client_id, access.secret), stream=True)
            try:
                body = _json_object(await _read_bounded(peer, response))
            finally:
                await response.aclose()
    except (httpx.HTTPError, TimeoutError) as error:
        failure = peer_failure(peer, error)
        raise type(failure)(peer.name, f"token endpoint {failure.reason}") from None

    if response.status_code != 200:
        raise PeerError(peer.name, _token_endpoint_refusal(response.status_code, body))
    token, lifetime = _read_token_response(peer, body)
    margin = min(MAX_REFRESH_MARGIN, lifetime / 5)
    logger.info("Federation: fetched an OAuth 2.0 access token for a peer, valid %.0f s", lifetime)
    return _CachedToken(token, time.monotonic() + lifetime - margin)


async def _read_bounded(peer: Peer, response: httpx.Response) -> bytes:
    """Return the body of a token response, which may not exceed ``MAX_TOKEN_RESPONSE_BYTES``."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk
        if len(body) > MAX_TOKEN_RESPONSE_BYTES:
            raise PeerError(
                peer.name,
                f"token endpoint responded with more than {MAX_TOKEN_RESPONSE_BYTES // 1024} KiB; "
                "check the token URL",
            )
    return bytes(body)


def _json_object(body: bytes) -> dict[str, Any] | None:
    """Return the JSON object of a token response, or None when the body is not one."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _token_endpoint_refusal(status: int, body: dict[str, Any] | None) -> str:
    error_code = ""
    if body is not None and isinstance(body.get("error"), str):
        error_code = f", error {body['error']}"
    if status in (400, 401):
        return (
            f"token endpoint refused the client credentials (HTTP {status}{error_code}); "
            "check the client id, client secret and scopes"
        )
    return f"token endpoint {describe_status(status)}{error_code}"


def _read_token_response(peer: Peer, body: dict[str, Any] | None) -> tuple[str, float]:
    """Return the access token and its lifetime in seconds from a token response (RFC 6749 5.1)."""
    token = body.get("access_token") if body is not None else None
    if body is None or not isinstance(token, str) or not token:
        raise PeerError(peer.name, "token endpoint responded without an access_token")
    token_type = body.get("token_type", "Bearer")
    if not isinstance(token_type, str) or token_type.lower() != "bearer":
        raise PeerError(
            peer.name, f"token endpoint issued a {token_type!r} token; only Bearer tokens can be sent"
        )
    expires_in = body.get("expires_in")
    try:
        lifetime = float(expires_in) if expires_in is not None else DEFAULT_LIFETIME
    except (TypeError, ValueError):
        lifetime = DEFAULT_LIFETIME
    return token, max(lifetime, 1.0)
