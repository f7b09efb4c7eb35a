"""Archives of our own server as peers of each other: each with its own index, store and organisations.

On the embedded backend each site has its own data folder (SQLite and objects). On the scale
backend each has its own PostgreSQL database and S3 prefix. No row or object is shared.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import select

from dicomweb_server.audit.tables import audit_event
from dicomweb_server.config import load_settings
from dicomweb_server.index.database import open_index
from tests.identity import AdminApi, bearer
from tests.services import LOOPBACK, Archive, Backend, ServerProcess, own_scale_backend

TIMEOUT = 120.0


@contextmanager
def own_backend(backend: Backend, request: pytest.FixtureRequest) -> Iterator[Backend]:
    """A backend of the session's kind whose index and store no other site shares."""
    if backend.name == "embedded":
        yield Backend("embedded")
        return
    with own_scale_backend(request.getfixturevalue("seaweedfs_service")) as own:
        yield own


@dataclass
class Site:
    """One archive of our server with its admin API."""

    name: str
    archive: Archive
    server: ServerProcess
    admin: AdminApi

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, **options: Any
    ) -> httpx.Response:
        """Send a request with the admin token, or with ``headers`` when given."""
        options.setdefault("timeout", TIMEOUT)
        return httpx.request(
            method,
            self.server.url + path,
            headers={**(self.server.headers if headers is None else headers)},
            **options,
        )

    def token(self, organisation: str, *scopes: str) -> str:
        return str(self.admin.create_token(organisation, *scopes)["token"])

    def headers(self, organisation: str, *scopes: str) -> dict[str, str]:
        return bearer(self.token(organisation, *scopes))

    def audit(self, *event_types: str) -> list[dict[str, Any]]:
        """Return the audit entries of the given types, oldest first, read from the site's index."""
        settings = load_settings(environ=self.archive.settings_environment())

        async def read() -> list[dict[str, Any]]:
            index = await open_index(settings)
            try:
                async with index.read() as connection:
                    rows = await connection.execute(
                        select(audit_event.c.content)
                        .where(audit_event.c.event_type.in_(event_types))
                        .order_by(audit_event.c.sequence)
                    )
                    return [orjson.loads(content) for (content,) in rows]
            finally:
                await index.close()

        return asyncio.run(read())

    def close(self) -> None:
        self.admin.close()
        self.archive.stop_all()


def start_site(name: str, backend: Backend, folder: Path, host: str = LOOPBACK) -> Site:
    """Migrate a new index and store for the site and start its server on ``host``."""
    archive = Archive(backend, folder / "data", backend.environment.get("DICOMWEB_INDEX_URL"))
    migrated = archive.run(["migrate"])
    assert migrated.returncode == 0, migrated.stderr
    server = archive.start(host=host)
    return Site(name, archive, server, AdminApi(server))
