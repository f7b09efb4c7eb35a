"""Who sends each request: the bearer token checked, the scope the route needs enforced.

Every path needs a token except ``GET /healthz``, the capabilities description
(``OPTIONS /dicom-web/``) and CORS preflight requests. The scope is decided from the method and
the path before the request reaches the application, so a STOW-RS request without the store
scope is rejected before any byte of its body is read:

- ``/admin/api/emergency-access``: emergency or admin (the handlers check which);
- any other path under ``/admin/``: admin;
- under ``/federation/``: read for GET and HEAD (federated search, retrieval from a peer), store
  for POST (import from a peer), admin otherwise;
- GET and HEAD: read; POST, PUT and PATCH: store; DELETE and anything else: admin.

A missing token is a 401 with ``WWW-Authenticate: Bearer realm="dicomweb"``; a token that cannot
be trusted adds ``error="invalid_token"``; a token without the scope is a 403 with
``error="insufficient_scope"`` (RFC 6750 3). Every response to a request with a token carries
``Cache-Control: no-store, private``, whatever the handler set: it may carry patient data, and
no cache should keep what a patient's authorization allowed at one moment.
"""

from __future__ import annotations

import datetime
import logging

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dicomweb_server.audit.context import identify
from dicomweb_server.auth.authenticate import Authenticator
from dicomweb_server.auth.identity import LOCAL_REQUESTER, Requester
from dicomweb_server.auth.identity import Scope as TokenScope
from dicomweb_server.config import Settings
from dicomweb_server.consent.emergency import open_access_keys, record_use
from dicomweb_server.errors import ArchiveError, Forbidden, Unauthenticated
from dicomweb_server.index.database import IndexUnavailable
from dicomweb_server.web.context import REQUEST_TIME, REQUESTER
from dicomweb_server.web.errors import error_response
from dicomweb_server.web.open_mode import open_mode_refusal
from dicomweb_server.web.urls import DICOMWEB_PREFIX, application_path

logger = logging.getLogger(__name__)

REALM = "dicomweb"
NO_STORE = b"no-store, private"
EMERGENCY_PREFIX = "/admin/api/emergency-access"
READ_METHODS = {"GET", "HEAD"}
STORE_METHODS = {"POST", "PUT", "PATCH"}
FEDERATION_PREFIX = "/federation/"


def required_scopes(method: str, path: str, headers: Headers) -> frozenset[TokenScope] | None:
    """Return the scopes any one of which allows the request, or None when it needs no token."""
    if method in READ_METHODS and path == "/healthz":
        return None
    if method == "OPTIONS" and (path in (DICOMWEB_PREFIX, DICOMWEB_PREFIX + "/") or _is_preflight(headers)):
        return None
    if path == EMERGENCY_PREFIX or path.startswith(EMERGENCY_PREFIX + "/"):
        return frozenset({TokenScope.EMERGENCY, TokenScope.ADMIN})
    if path.startswith("/admin/"):
        return frozenset({TokenScope.ADMIN})
    if path.startswith(FEDERATION_PREFIX):
        return _federation_scopes(method)
    if method in READ_METHODS or method == "OPTIONS":
        return frozenset({TokenScope.READ})
    if method in STORE_METHODS:
        return frozenset({TokenScope.STORE})
    return frozenset({TokenScope.ADMIN})


def _federation_scopes(method: str) -> frozenset[TokenScope]:
    if method in READ_METHODS:
        return frozenset({TokenScope.READ})
    if method == "POST":
        return frozenset({TokenScope.STORE})
    return frozenset({TokenScope.ADMIN})


def _is_preflight(headers: Headers) -> bool:
    return "origin" in headers and "access-control-request-method" in headers


def _bearer_token(headers: Headers) -> str | None:
    """Return the token of an ``Authorization: Bearer`` header, None without the header.

    Raises
    ------
    Unauthenticated
        When the header uses another scheme or has no token.
    """
    value = headers.get("authorization")
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(
            "the Authorization header is not a bearer token; send 'Authorization: Bearer <token>'"
        )
    return token.strip()


def _challenge(error: str | None = None, scope: str | None = None, description: str | None = None) -> str:
    parameters = [f'realm="{REALM}"']
    if error:
        parameters.append(f'error="{error}"')
    if scope:
        parameters.append(f'scope="{scope}"')
    if description:
        cleaned = description.replace("\\", "").replace('"', "'")
        parameters.append(f'error_description="{cleaned}"')
    return "Bearer " + ", ".join(parameters)


class AuthenticationMiddleware:
    """Set the requester of every request that needs one, or respond 401 or 403 instead."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.authenticator = Authenticator(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        now = datetime.datetime.now(datetime.UTC)
        scope[REQUEST_TIME] = now
        path = application_path(scope)
        headers = Headers(scope=scope)
        needed = required_scopes(scope["method"], path, headers)
        if needed is None:
            await self.app(scope, receive, send)
            return

        try:
            requester = await self._requester(scope, headers, now)
            identify(scope, requester)
            _check_scope(requester, needed)
            await self._record_emergency_use(scope, requester, path, now)
        except ArchiveError as error:
            response = error_response(error.http_status, error.message, error.headers)
            await response(scope, receive, send)
            return
        except IndexUnavailable as error:
            logger.error("Identity: the index could not be read to check a token: %s", type(error).__name__)
            response = error_response(503, "the archive cannot reach its index; try again later")
            await response(scope, receive, send)
            return

        scope[REQUESTER] = requester
        await self.app(scope, receive, _without_caching(send))

    async def _requester(self, scope: Scope, headers: Headers, now: datetime.datetime) -> Requester:
        try:
            token = _bearer_token(headers)
        except Unauthenticated as error:
            raise Unauthenticated(error.message, headers={"WWW-Authenticate": _challenge()}) from None
        if token is None:
            if self.settings.open:
                refusal = open_mode_refusal(headers, self.settings)
                if refusal is None:
                    return LOCAL_REQUESTER
                raise Unauthenticated(refusal, headers={"WWW-Authenticate": _challenge()})
            raise Unauthenticated(
                "this request needs a bearer token; send 'Authorization: Bearer <token>' "
                "(the first admin token is in the file admin-token of the server's data folder)",
                headers={"WWW-Authenticate": _challenge()},
            )
        index = scope["app"].state.server.index
        try:
            return await self.authenticator.authenticate(index, token, now)
        except Unauthenticated as error:
            challenge = _challenge("invalid_token", description=error.message)
            raise Unauthenticated(error.message, headers={"WWW-Authenticate": challenge}) from None

    async def _record_emergency_use(
        self, scope: Scope, requester: Requester, path: str, now: datetime.datetime
    ) -> None:
        """Record a read by a requester with emergency access open, before any response is sent.

        The audit trail records every request as well; these rows list the uses per access.
        """
        if requester.affiliated or scope["method"] not in READ_METHODS or path.startswith("/admin/"):
            return
        index = scope["app"].state.server.index
        async with index.read() as connection:
            accesses = await open_access_keys(connection, requester, now)
        if not accesses:
            return
        async with index.write() as connection:
            await record_use(connection, requester, accesses, method=scope["method"], path=path, now=now)


def _check_scope(requester: Requester, needed: frozenset[TokenScope]) -> None:
    if needed & requester.scopes:
        return
    expected = " or ".join(sorted(needed))
    raise Forbidden(
        f"the token lacks the scope this request needs ({expected}); ask an administrator for a token "
        "with that scope",
        headers={"WWW-Authenticate": _challenge("insufficient_scope", scope=" ".join(sorted(needed)))},
    )


def _without_caching(send: Send) -> Send:
    async def send_uncached(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [
                (name, value)
                for name, value in message.get("headers", [])
                if name.lower() != b"cache-control"
            ]
            headers.append((b"cache-control", NO_STORE))
            message = {**message, "headers": headers}
        await send(message)

    return send_uncached
