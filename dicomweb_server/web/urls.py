"""Absolute URLs as clients reach the server, also behind a reverse proxy.

A configured public base URL wins. Otherwise the scheme, host and path prefix come from the
request, overridden by ``Forwarded`` (RFC 7239) or ``X-Forwarded-Proto``, ``X-Forwarded-Host``
and ``X-Forwarded-Prefix`` only when the request comes from a configured trusted proxy: a
client that sets those headers itself must not choose the URLs the server writes.
"""

from __future__ import annotations

import ipaddress
import re
from functools import lru_cache

from starlette.requests import Request
from starlette.types import Scope

from dicomweb_server.errors import InvalidRequest

DICOMWEB_PREFIX = "/dicom-web"
APP_ROOT_PATH = "dicomweb_server.root_path"
"""Scope key of the root path the ASGI server gave the application, before any Mount changed it."""


def application_path(scope: Scope) -> str:
    """Return the request path without the root path the ASGI server mounted the application at."""
    path: str = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        return path[len(root) :] or "/"
    return path


@lru_cache(maxsize=64)
def _networks(proxies: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(proxy, strict=False) for proxy in proxies)


def _from_trusted_proxy(request: Request, proxies: tuple[str, ...]) -> bool:
    if not proxies or request.client is None:
        return False
    try:
        address = ipaddress.ip_address(request.client.host)
    except ValueError:
        return False
    return any(address in network for network in _networks(proxies))


def _first(value: str | None) -> str | None:
    if not value:
        return None
    first = value.split(",")[0].strip()
    return first or None


def _forwarded(header: str | None) -> dict[str, str]:
    """Return the parameters of the first element of a Forwarded header."""
    if not header:
        return {}
    element = header.split(",")[0]
    parameters = {}
    for pair in element.split(";"):
        name, _, value = pair.partition("=")
        parameters[name.strip().lower()] = value.strip().strip('"')
    return parameters


_REG_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._~-]*[A-Za-z0-9_~])?")
_PORT = re.compile(r"[0-9]{1,5}")
_PREFIX = re.compile(r"(?:/[A-Za-z0-9._~%!$&'()*+,;=:@-]*)*")
_SCHEMES = ("http", "https")


def split_host(value: str) -> tuple[str, int | None] | None:
    """Split a Host header value ("pacs.example.org:8443", "[::1]:80") into host and port.

    Returns None when the value is not a host name, an IPv4 address or a bracketed IPv6 address,
    optionally followed by a port (RFC 9110 7.2). Only the characters of DNS names and addresses
    are accepted, which keeps quotes and angle brackets out of the URLs the server writes.
    """
    host, port_text = value, None
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port_text = rest[1:] if rest else None
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
    else:
        host, colon, port_text_found = value.partition(":")
        port_text = port_text_found if colon else None
        if not _REG_NAME.fullmatch(host):
            return None
    if port_text is None:
        return host, None
    if not _PORT.fullmatch(port_text) or not 0 < int(port_text) < 65536:
        return None
    return host, int(port_text)


def _checked_host(value: str, source: str) -> str:
    if split_host(value) is None:
        raise InvalidRequest(
            f"invalid {source} {value!r}: give a host name or address with an optional port, such as "
            "pacs.example.org:8443"
        )
    return value


def base_url(request: Request) -> str:
    """Return the URL of the server root as the client sees it, without a trailing slash.

    Raises
    ------
    InvalidRequest
        When the Host header, or a forwarded host, scheme or prefix from a trusted proxy, is not
        valid syntax, because it would be written into the URLs of the response.
    """
    settings = request.app.state.settings
    if settings.public_base_url:
        return settings.public_base_url.rstrip("/")

    scheme = request.url.scheme
    host = request.headers.get("host") or request.url.netloc
    host = _checked_host(host, "Host header")
    prefix = request.scope.get(APP_ROOT_PATH, "")
    if _from_trusted_proxy(request, settings.trusted_proxies):
        forwarded = _forwarded(request.headers.get("forwarded"))
        scheme = forwarded.get("proto") or _first(request.headers.get("x-forwarded-proto")) or scheme
        host = forwarded.get("host") or _first(request.headers.get("x-forwarded-host")) or host
        prefix = _first(request.headers.get("x-forwarded-prefix")) or prefix
        host = _checked_host(host, "forwarded host")
        if scheme.lower() not in _SCHEMES:
            raise InvalidRequest(f"invalid forwarded scheme {scheme!r}: use http or https")
        if not _PREFIX.fullmatch(prefix):
            raise InvalidRequest(f"invalid forwarded prefix {prefix!r}: give a URL path such as /pacs")
    return f"{scheme}://{host}{prefix.rstrip('/')}"


def dicomweb_root(request: Request) -> str:
    """Return the DICOMweb root URL ("https://pacs.example.org/dicom-web")."""
    return base_url(request) + DICOMWEB_PREFIX


def study_url(root: str, study_instance_uid: str) -> str:
    return f"{root}/studies/{study_instance_uid}"


def series_url(root: str, study_instance_uid: str, series_instance_uid: str) -> str:
    return f"{study_url(root, study_instance_uid)}/series/{series_instance_uid}"


def instance_url(root: str, study_instance_uid: str, series_instance_uid: str, sop_instance_uid: str) -> str:
    return f"{series_url(root, study_instance_uid, series_instance_uid)}/instances/{sop_instance_uid}"
