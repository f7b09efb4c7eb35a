"""Retrieve Capabilities checks (PS3.18 8.9): OPTIONS on the base URL returns a WADL document
that describes the resources the archive serves."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from urllib.parse import urljoin

import httpx

from conformance import media
from conformance.archive import describe, media_type_of
from conformance.context import Context
from conformance.registry import CheckFailed, Level, check, expect

WADL_NAMESPACE = "{http://wadl.dev.java.net/2009/02}"


def _capabilities(context: Context) -> tuple[httpx.Response, str]:
    """Send OPTIONS to the base URL; one redirect, which keeps the method, is followed."""
    response = context.archive.request("OPTIONS", context.archive.base_url, accept=media.WADL)
    note = ""
    if response.status_code in (307, 308) and "location" in response.headers:
        target = urljoin(context.archive.base_url, response.headers["location"])
        note = f"returned after a {response.status_code} redirect to {target}"
        response = context.archive.request("OPTIONS", target, accept=media.WADL)
    return response, note


def _methods(root: ElementTree.Element) -> dict[str, set[str]]:
    """Map each resource path of a WADL document ("studies/{study}") to its methods."""
    found: dict[str, set[str]] = {}

    def walk(element: ElementTree.Element, prefix: str) -> None:
        for resource in element.findall(f"{WADL_NAMESPACE}resource"):
            path = f"{prefix}/{resource.get('path', '').strip('/')}".strip("/")
            methods = {
                method.get("name", "").upper() for method in resource.findall(f"{WADL_NAMESPACE}method")
            }
            found.setdefault(path, set()).update(methods)
            walk(resource, path)

    for resources in root.findall(f"{WADL_NAMESPACE}resources"):
        walk(resources, "")
    return found


def _wadl(context: Context) -> tuple[dict[str, set[str]], str]:
    response, note = _capabilities(context)
    expect(response.status_code == 200, "200 (OK) for OPTIONS on the base URL", describe(response))
    expect(
        media_type_of(response) in (media.WADL, "application/xml", "text/xml"),
        f"a WADL document ({media.WADL})",
        describe(response),
    )
    try:
        root = ElementTree.fromstring(response.content)
    except ElementTree.ParseError as error:
        raise CheckFailed(
            f"expected a well-formed WADL document; got XML that cannot be parsed: {error}"
        ) from error
    expect(root.tag == f"{WADL_NAMESPACE}application", "a WADL application element", root.tag)
    return _methods(root), note


@check("8.9/retrieve-capabilities", "OPTIONS on the base URL returns a WADL document")
def retrieve_capabilities(context: Context) -> str:
    resources, note = _wadl(context)
    methods = resources.get("studies", set())
    expect(
        {"GET", "POST"} <= methods, "the studies resource with GET (search) and POST (store)", sorted(methods)
    )
    return note


@check(
    "8.9/capabilities-resources",
    "The WADL document lists the metadata and frames resources",
    Level.RECOMMENDED,
)
def capabilities_resources(context: Context) -> None:
    resources, _ = _wadl(context)
    for suffix in ("/metadata", "/frames/"):
        listed = [path for path in resources if suffix in f"{path}/" and "GET" in resources[path]]
        expect(bool(listed), f"a resource path containing {suffix} with GET", sorted(resources))
