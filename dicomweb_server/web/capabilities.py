"""The Retrieve Capabilities transaction (PS3.18 8.9): a WADL description of the resources served.

The description is built from the route table, so it lists exactly what the server answers.
"""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dicomweb_server.web import media_types
from dicomweb_server.web.urls import dicomweb_root

REPRESENTATIONS = {
    "Search": [media_types.DICOM_JSON, media_types.JSON],
    "Metadata": [media_types.DICOM_JSON, media_types.JSON],
    "Frames": [media_types.MULTIPART_RELATED, media_types.OCTET_STREAM],
    "Bulkdata": [media_types.MULTIPART_RELATED],
    "Retrieve": [media_types.MULTIPART_RELATED, media_types.DICOM],
    "Store": [media_types.DICOM_JSON, media_types.JSON],
    "Rendered": [media_types.JPEG, media_types.PNG, media_types.GIF, "application/pdf"],
    "Thumbnail": [media_types.JPEG, media_types.PNG, media_types.GIF],
    "FramesRendered": [media_types.JPEG, media_types.PNG, media_types.GIF, media_types.MULTIPART_RELATED],
}


def _representations(name: str) -> list[str]:
    if name.startswith("RetrieveFrames") and name.endswith(("Rendered", "Thumbnail")):
        return REPRESENTATIONS["FramesRendered"]
    for marker in ("Rendered", "Thumbnail", "Metadata", "Frames", "Bulkdata", "Search", "Store", "Retrieve"):
        if marker in name:
            return REPRESENTATIONS[marker]
    return []


def build_wadl(root: str, routes: list[Route]) -> str:
    """Write a WADL document with one resource per path and one method per transaction."""
    by_path: dict[str, list[Route]] = {}
    for route in routes:
        if route.name == "RetrieveCapabilities":
            continue
        by_path.setdefault(route.path.lstrip("/"), []).append(route)

    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<application xmlns="http://wadl.dev.java.net/2009/02">',
        f"  <resources base={quoteattr(root + '/')}>",
    ]
    for path, path_routes in by_path.items():
        lines.append(f"    <resource path={quoteattr(path.replace(':path', ''))}>")
        for route in path_routes:
            for method in sorted(route.methods or []):
                if method == "HEAD":
                    continue
                lines.append(f"      <method name={quoteattr(method)} id={quoteattr(route.name)}>")
                lines.append("        <response>")
                for media_type in _representations(route.name):
                    lines.append(f"          <representation mediaType={quoteattr(media_type)}/>")
                lines.append("        </response>")
                lines.append("      </method>")
        lines.append("    </resource>")
    lines += ["  </resources>", "</application>", ""]
    return "\n".join(lines)


async def retrieve_capabilities(request: Request) -> Response:
    from dicomweb_server.web.routes import DICOMWEB_ROUTES

    routes = [route for route in DICOMWEB_ROUTES if isinstance(route, Route)]
    return Response(build_wadl(dicomweb_root(request), routes), media_type=media_types.WADL)
