"""CORS checks, run when ``--origin`` names a browser origin the archive is set to allow.

CORS is defined by the WHATWG Fetch standard, not by PS3.18, but a browser viewer such as OHIF
cannot reach an archive on another origin without it. A browser sends a preflight OPTIONS
request before a GET that carries Authorization or a DICOM Accept header, and before a STOW-RS
POST, and reads a response header such as Warning only when the archive exposes it.
"""

from __future__ import annotations

import httpx

from conformance import media
from conformance.archive import describe
from conformance.context import Context
from conformance.registry import NotApplicable, check, expect
from conformance.testdata import new_uid


def _origin(context: Context) -> str:
    if not context.origin:
        raise NotApplicable("no --origin given; CORS is checked only for an origin the archive allows")
    return context.origin


def _names(value: str | None) -> set[str]:
    return {name.strip().lower() for name in (value or "").split(",") if name.strip()}


def _preflight(context: Context, path: str, method: str, headers: list[str]) -> httpx.Response:
    origin = _origin(context)
    response = context.archive.request(
        "OPTIONS",
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": ", ".join(headers),
        },
    )
    expect(
        response.status_code in (200, 204),
        f"200 or 204 for a preflight of {method} {path}",
        describe(response),
    )
    allowed_origin = response.headers.get("access-control-allow-origin")
    expect(allowed_origin in (origin, "*"), f"Access-Control-Allow-Origin: {origin}", allowed_origin)
    methods = _names(response.headers.get("access-control-allow-methods"))
    expect(method.lower() in methods or "*" in methods, f"{method} in Access-Control-Allow-Methods", methods)
    allowed = _names(response.headers.get("access-control-allow-headers"))
    # "*" does not cover Authorization (Fetch standard), so that one must be listed by name.
    missing = [
        name for name in headers if name not in allowed and (name == "authorization" or "*" not in allowed)
    ]
    expect(not missing, f"{', '.join(headers)} in Access-Control-Allow-Headers", sorted(allowed))
    return response


@check("CORS/preflight-search", "Preflight of a search with Authorization and Accept headers")
def preflight_search(context: Context) -> None:
    _preflight(context, "/studies", "GET", ["authorization", "accept"])


@check("CORS/preflight-store", "Preflight of a STOW-RS POST with Content-Type, Authorization and Accept")
def preflight_store(context: Context) -> None:
    _preflight(context, "/studies", "POST", ["authorization", "accept", "content-type"])


@check("CORS/preflight-frames", "Preflight of a frame request, which a viewer sends for every frame")
def preflight_frames(context: Context) -> None:
    path = f"/studies/{new_uid()}/series/{new_uid()}/instances/{new_uid()}/frames/1"
    _preflight(context, path, "GET", ["authorization", "accept"])


@check("CORS/response-headers", "A search response to the origin allows it and exposes the Warning header")
def response_headers(context: Context) -> None:
    origin = _origin(context)
    response = context.archive.get(
        "/studies",
        accept=media.DICOM_JSON,
        params=[("PatientID", f"CONF-{context.run_id}-CORS")],
        headers={"Origin": origin},
    )
    expect(response.status_code == 200, "200 (OK)", describe(response))
    allowed_origin = response.headers.get("access-control-allow-origin")
    expect(allowed_origin in (origin, "*"), f"Access-Control-Allow-Origin: {origin}", allowed_origin)
    exposed = _names(response.headers.get("access-control-expose-headers"))
    expect(
        "warning" in exposed or "*" in exposed, "Warning in Access-Control-Expose-Headers", sorted(exposed)
    )


@check("CORS/error-response", "An error response carries the CORS headers too, so the viewer can read it")
def error_response(context: Context) -> None:
    origin = _origin(context)
    response = context.archive.get(
        f"/studies/{new_uid()}/metadata", accept=media.DICOM_JSON, headers={"Origin": origin}
    )
    expect(response.status_code == 404, "404 (Not Found)", describe(response))
    allowed_origin = response.headers.get("access-control-allow-origin")
    expect(
        allowed_origin in (origin, "*"), f"Access-Control-Allow-Origin: {origin} on the 404", allowed_origin
    )
