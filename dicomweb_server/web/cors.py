"""CORS for browser viewers such as OHIF, limited to the configured origins."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.types import Receive, Scope, Send


class OriginAllowListMiddleware(CORSMiddleware):
    """Starlette's CORS middleware, except that an origin outside the list gets no CORS header.

    Starlette adds Access-Control-Expose-Headers to the response for any Origin, and responds to
    a preflight from an origin outside the list with a 400 that lists the allowed methods and
    headers. Here such a request passes to the application as if CORS were not configured, so
    its response carries no Access-Control-* header at all.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            origin = Headers(scope=scope).get("origin")
            if origin is not None and not self.is_allowed_origin(origin):
                await self.app(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
