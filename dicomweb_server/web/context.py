"""What a request handler needs from the running server: settings, index, store, requester."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement
from starlette.requests import Request

from dicomweb_server.auth.identity import LOCAL_REQUESTER, Requester
from dicomweb_server.config import Settings
from dicomweb_server.consent.policy import visible_studies
from dicomweb_server.index.database import Index
from dicomweb_server.ingest import Ingest
from dicomweb_server.storage.store import ObjectStore


@dataclass
class ServerState:
    """The resources the lifespan opened, shared by every request."""

    settings: Settings
    index: Index
    store: ObjectStore
    ingest: Ingest


def state(request: Request) -> ServerState:
    return request.app.state.server  # type: ignore[no-any-return]


def requester(request: Request) -> Requester:
    return request.scope.get("requester", LOCAL_REQUESTER)  # type: ignore[no-any-return]


def requester_visibility(request: Request) -> ColumnElement[bool]:
    """Return the consent predicate for the requester of ``request`` (see ``consent.policy``)."""
    return visible_studies(requester(request))
