"""Query parameters handed to dicomweb-client, and the scopes the federation paths need."""

from __future__ import annotations

import pytest
from starlette.datastructures import Headers

from dicomweb_server.auth.identity import Scope
from dicomweb_server.federation.client import _client_arguments
from dicomweb_server.web.authentication import required_scopes


def test_client_arguments_split() -> None:
    arguments = _client_arguments(
        [
            ("PatientID", "12345"),
            ("IssuerOfPatientID", "HOSP-A"),
            ("includefield", "StudyDescription,00081030"),
            ("includefield", "ModalitiesInStudy"),
            ("fuzzymatching", "true"),
            ("limit", "20"),
            ("offset", "0"),
            ("emptyvaluematching", "true"),
        ]
    )

    assert arguments == {
        "search_filters": {"PatientID": "12345", "IssuerOfPatientID": "HOSP-A"},
        "fields": ["StudyDescription", "00081030", "ModalitiesInStudy"],
        "fuzzymatching": True,
        "limit": 20,
        "offset": 0,
        "additional_params": {"emptyvaluematching": "true"},
    }


def test_client_arguments_empty() -> None:
    assert _client_arguments([]) == {}


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/federation/dicom-web/studies", {Scope.READ}),
        ("HEAD", "/federation/dicom-web/studies/1.2/series", {Scope.READ}),
        ("GET", "/federation/dicom-web/peers/mercy/studies/1.2/metadata", {Scope.READ}),
        ("POST", "/federation/dicom-web/peers/mercy/studies/1.2/import", {Scope.STORE}),
        ("DELETE", "/federation/dicom-web/peers/mercy/studies/1.2", {Scope.ADMIN}),
        ("PUT", "/federation/dicom-web/studies", {Scope.ADMIN}),
    ],
)
def test_federation_scopes(method: str, path: str, expected: set[Scope]) -> None:
    assert required_scopes(method, path, Headers({})) == frozenset(expected)
