"""Absolute URLs as clients reach the server, also behind a reverse proxy.

A configured public base URL wins. Otherwise the scheme, host and path prefix come from the
request, overridden by ``Forwarded`` (RFC 7239) or ``X-Forwarded-Proto``, ``X-Forwarded-Host``
and ``X-Forwarded-Prefix`` only when the request comes from a configured trusted proxy: a
client that sets those headers itself must not choose the URLs the server writes.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from starlette.requests import Request

DICOMWEB_PREFIX = "/dicom-web"
APP_ROOT_PATH = "dicomweb_server.root_path"
"""Scope key of the root path the ASGI server gave the application, before any Mount changed it."""


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


def base_url(request: Request) -> str:
    """Return the URL of the server root as the client sees it, without a trailing slash."""
    settings = request.app.state.settings
    if settings.public_base_url:
        return settings.public_base_url.rstrip("/")

    scheme = request.url.scheme
    host = request.headers.get("host") or request.url.netloc
    prefix = request.scope.get(APP_ROOT_PATH, "")
    if _from_trusted_proxy(request, settings.trusted_proxies):
        forwarded = _forwarded(request.headers.get("forwarded"))
        scheme = forwarded.get("proto") or _first(request.headers.get("x-forwarded-proto")) or scheme
        host = forwarded.get("host") or _first(request.headers.get("x-forwarded-host")) or host
        prefix = _first(request.headers.get("x-forwarded-prefix")) or prefix
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
