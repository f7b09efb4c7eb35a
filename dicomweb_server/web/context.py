"""What a request handler needs from the running server: settings, index, store, requester."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from sqlalchemy import ColumnElement
from starlette.requests import Request

from dicomweb_server.audit.writer import AuditWriter
from dicomweb_server.auth.identity import Requester
from dicomweb_server.config import Settings
from dicomweb_server.consent.policy import visible_studies
from dicomweb_server.errors import Unauthenticated
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
    audit: AuditWriter


def state(request: Request) -> ServerState:
    return request.app.state.server  # type: ignore[no-any-return]


REQUESTER = "dicomweb_server.requester"
"""Scope key of the :class:`Requester` the authentication middleware found for a request."""

REQUEST_TIME = "dicomweb_server.request_time"
"""Scope key of the one UTC instant every consent decision of a request is taken at."""


def requester(request: Request) -> Requester:
    """Return who sent the request.

    Raises
    ------
    Unauthenticated
        When no requester was established, such as for a route the authentication middleware
        treats as public; a handler that reads data must never run without one.
    """
    found = request.scope.get(REQUESTER)
    if found is None:
        raise Unauthenticated("this request needs a bearer token")
    return found  # type: ignore[no-any-return]


def request_time(request: Request) -> datetime.datetime:
    return request.scope.setdefault(REQUEST_TIME, datetime.datetime.now(datetime.UTC))  # type: ignore[no-any-return]


def requester_visibility(request: Request) -> ColumnElement[bool]:
    """Return the consent predicate for the requester of ``request`` (see ``consent.policy``)."""
    return visible_studies(requester(request), request_time(request))
