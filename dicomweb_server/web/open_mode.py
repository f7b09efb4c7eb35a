"""Open mode (``--open``): requests without a token, served as the local administrator, from here only.

Listening on a loopback address is not enough to keep other machines out. A web page can make
the browser send requests to 127.0.0.1 under a host name of the attacker's (DNS rebinding), and
a reverse proxy on the same machine passes on requests from anywhere. So a request without a
token is served only when its Host header names a loopback address or localhost, it carries no
Forwarded or X-Forwarded-* header, and any Origin it carries is one of the configured CORS origins.
"""

from __future__ import annotations

from starlette.datastructures import Headers

from dicomweb_server.config import Settings, is_loopback
from dicomweb_server.web.urls import split_host

FORWARDING_HEADER_PREFIX = "x-forwarded-"


def open_mode_refusal(headers: Headers, settings: Settings) -> str | None:
    """Return why a request without a token is not served in open mode, or None when it is served."""
    host = headers.get("host", "")
    parsed = split_host(host)
    if parsed is None or not _names_loopback(parsed[0]):
        return (
            f"this request needs a bearer token: the server runs in open mode, which serves requests "
            f"without a token only for the Host 127.0.0.1, [::1] or localhost, and this one has the Host "
            f"{host!r}; send 'Authorization: Bearer <token>'"
        )
    forwarded = sorted(
        {name for name in headers if name == "forwarded" or name.startswith(FORWARDING_HEADER_PREFIX)}
    )
    if forwarded:
        return (
            "this request needs a bearer token: the server runs in open mode, which does not serve "
            f"requests passed on by a proxy without a token, and this one has the header {forwarded[0]}; "
            "send 'Authorization: Bearer <token>'"
        )
    origin = headers.get("origin")
    if origin is not None and origin not in settings.cors_origins:
        return (
            f"this request needs a bearer token: the server runs in open mode, which serves browser "
            f"requests without a token only from the origins in DICOMWEB_CORS_ORIGINS, and {origin!r} "
            "is not one; add it there or send 'Authorization: Bearer <token>'"
        )
    return None


def _names_loopback(host: str) -> bool:
    return host.lower() == "localhost" or is_loopback(host)
