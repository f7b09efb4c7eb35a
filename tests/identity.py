"""Organisations, tokens and authorizations for the tests, made through the admin API of a live server.

Every name a test makes carries a random suffix, so tests sharing the session's server (and, on
the scale backend, its database) never meet each other's organisations.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from pydicom.dataset import Dataset

from tests.services import ServerProcess
from tests.testdata import to_bytes

TIMEOUT = 120.0


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def unique(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:8]}"


class AdminApi:
    """The admin API of one server, called with its admin token."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.http = httpx.Client(base_url=server.url, headers=dict(server.headers), timeout=TIMEOUT)

    def close(self) -> None:
        self.http.close()

    def _json(self, response: httpx.Response, expected: int) -> Any:
        assert response.status_code == expected, (
            response.request.method,
            response.request.url,
            response.text,
        )
        return response.json()

    def add_organisation(self, name: str, *, affiliated: bool) -> str:
        body = {"name": name, "affiliated": affiliated}
        return str(self._json(self.http.post("/admin/api/organisations", json=body), 201)["name"])

    def delete_organisation(self, name: str) -> None:
        self._json(self.http.delete(f"/admin/api/organisations/{name}"), 200)

    def create_token(self, organisation: str, *scopes: str, expires_at: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"organisation": organisation, "scopes": list(scopes)}
        if expires_at is not None:
            body["expires_at"] = expires_at
        created: dict[str, Any] = self._json(self.http.post("/admin/api/tokens", json=body), 201)
        return created

    def token_headers(self, organisation: str, *scopes: str) -> dict[str, str]:
        return bearer(self.create_token(organisation, *scopes)["token"])

    def revoke_token(self, token_id: str) -> None:
        self._json(self.http.delete(f"/admin/api/tokens/{token_id}"), 200)

    def grant(self, **body: Any) -> dict[str, Any]:
        body.setdefault("purpose", "continuing care")
        body.setdefault("reference", "signed form in the test binder")
        recorded: dict[str, Any] = self._json(self.http.post("/admin/api/authorizations", json=body), 201)
        return recorded

    def authorization(self, authorization_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self._json(
            self.http.get(f"/admin/api/authorizations/{authorization_id}"), 200
        )
        return found

    def revoke(
        self, authorization_id: str, reason: str = "the patient revoked it in writing"
    ) -> dict[str, Any]:
        revoked: dict[str, Any] = self._json(
            self.http.post(f"/admin/api/authorizations/{authorization_id}/revoke", json={"reason": reason}),
            200,
        )
        return revoked

    def quarantine(self, **params: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self._json(self.http.get("/admin/api/quarantine", params=params), 200)
        return found


def store(server: ServerProcess, dataset: Dataset, headers: dict[str, str] | None = None) -> httpx.Response:
    """Store one instance as a bare application/dicom body, with ``headers`` or else the admin token."""
    return httpx.post(
        f"{server.dicomweb}/studies",
        content=to_bytes(dataset),
        headers={
            **(server.headers if headers is None else headers),
            "Content-Type": "application/dicom",
            "Accept": "application/dicom+json",
        },
        timeout=TIMEOUT,
    )
