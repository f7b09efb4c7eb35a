"""The scope each request needs, decided from its method and path before the body is read."""

from __future__ import annotations

import pytest
from starlette.datastructures import Headers

from dicomweb_server.auth.identity import Scope
from dicomweb_server.web.authentication import required_scopes

NO_HEADERS = Headers({})
PREFLIGHT = Headers({"Origin": "https://viewer.example.org", "Access-Control-Request-Method": "GET"})

CASES = [
    ("GET", "/healthz", NO_HEADERS, None),
    ("OPTIONS", "/dicom-web/", NO_HEADERS, None),
    ("OPTIONS", "/dicom-web", NO_HEADERS, None),
    ("OPTIONS", "/dicom-web/studies", PREFLIGHT, None),
    ("OPTIONS", "/dicom-web/studies", NO_HEADERS, {Scope.READ}),
    ("GET", "/dicom-web/studies", NO_HEADERS, {Scope.READ}),
    ("HEAD", "/dicom-web/studies/1.2/metadata", NO_HEADERS, {Scope.READ}),
    ("GET", "/wado", NO_HEADERS, {Scope.READ}),
    ("GET", "/healthz/extra", NO_HEADERS, {Scope.READ}),
    ("POST", "/dicom-web/studies", NO_HEADERS, {Scope.STORE}),
    ("POST", "/dicom-web/studies/1.2", PREFLIGHT, {Scope.STORE}),
    ("PUT", "/dicom-web/studies", NO_HEADERS, {Scope.STORE}),
    ("DELETE", "/dicom-web/studies/1.2", NO_HEADERS, {Scope.ADMIN}),
    ("GET", "/admin/api/tokens", NO_HEADERS, {Scope.ADMIN}),
    ("POST", "/admin/api/authorizations", NO_HEADERS, {Scope.ADMIN}),
    ("POST", "/admin/api/emergency-access", NO_HEADERS, {Scope.EMERGENCY, Scope.ADMIN}),
    ("DELETE", "/admin/api/emergency-access/abc", NO_HEADERS, {Scope.EMERGENCY, Scope.ADMIN}),
    ("GET", "/admin/api/emergency-accessible", NO_HEADERS, {Scope.ADMIN}),
    ("TRACE", "/dicom-web/studies", NO_HEADERS, {Scope.ADMIN}),
]


@pytest.mark.parametrize(("method", "path", "headers", "expected"), CASES)
def test_required_scopes(method: str, path: str, headers: Headers, expected: set[Scope] | None) -> None:
    assert required_scopes(method, path, headers) == (None if expected is None else frozenset(expected))
