"""CORS for browser viewers such as OHIF, limited to the configured origins."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.types import Receive, Scope, Send

from dicomweb_server.web.errors import error_response


class OriginAllowListMiddleware(CORSMiddleware):
    """Starlette's CORS middleware, except for requests from an origin outside the list.

    Starlette adds Access-Control-Expose-Headers to the response for any Origin, and responds to
    a preflight from an origin outside the list with a 400 that lists the allowed methods and
    headers. Here such a preflight gets a 403 that names the origin and the setting that lists
    origins. Any other request from such an origin passes to the application as if CORS were not
    configured, so its response carries no Access-Control-* header at all.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = Headers(scope=scope)
            origin = headers.get("origin")
            if origin is not None and not self.is_allowed_origin(origin):
                if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
                    response = error_response(403, _rejected_origin_message(origin))
                    await response(scope, receive, send)
                    return
                await self.app(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def _rejected_origin_message(origin: str) -> str:
    return (
        f"CORS preflight rejected: the origin {origin!r} is not allowed to call this archive; add it to "
        "DICOMWEB_CORS_ORIGINS (cors_origins, comma-separated) to let browser pages from it call the archive"
    )
