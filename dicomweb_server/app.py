"""Build the Starlette application from settings; its lifespan opens and closes the index and store."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pydicom.config
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dicomweb_server.admin.routes import admin_mount
from dicomweb_server.audit.context import application_activity
from dicomweb_server.audit.events import TypeCode
from dicomweb_server.audit.writer import AuditWriter
from dicomweb_server.config import Settings
from dicomweb_server.index.database import open_index
from dicomweb_server.ingest import Ingest
from dicomweb_server.storage.store import open_store
from dicomweb_server.web.audit import AuditMiddleware
from dicomweb_server.web.authentication import AuthenticationMiddleware
from dicomweb_server.web.context import ServerState
from dicomweb_server.web.cors import OriginAllowListMiddleware
from dicomweb_server.web.errors import EXCEPTION_HANDLERS, UnexpectedErrorMiddleware
from dicomweb_server.web.federation import federation_mount
from dicomweb_server.web.routes import dicomweb_mount
from dicomweb_server.web.urls import APP_ROOT_PATH
from dicomweb_server.web.wado_uri import WADO_URI_PATH, retrieve_wado_uri

logger = logging.getLogger(__name__)

CORS_ALLOWED_HEADERS = ["Authorization", "Accept", "Content-Type", "If-None-Match", "Range", "Cache-Control"]
CORS_EXPOSED_HEADERS = [
    "Warning",
    "ETag",
    "Location",
    "Content-Location",
    "Content-Range",
    "Content-Length",
    "WWW-Authenticate",
]


def configure_pydicom() -> None:
    """Set pydicom's process-wide options once, at start.

    Values that break their VR's rules are read without warnings: real archives hold many, the
    archive stores them as received, and pydicom's warning messages quote the values, which
    would put patient data into logs. The attributes used for identity are validated by the
    archive itself.
    """
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE


async def open_state(settings: Settings) -> ServerState:
    """Open the index and the object store the settings select, and check that both work."""
    index = await open_index(settings)
    try:
        store = open_store(settings)
        await store.check()
        await asyncio.to_thread(store.remove_abandoned_spool)
    except BaseException:
        await index.close()
        raise
    ingest = Ingest(index, store, overwrite=settings.overwrite, max_part_size=settings.max_part_size)
    audit = AuditWriter.for_settings(settings)
    return ServerState(settings=settings, index=index, store=store, ingest=ingest, audit=audit)


def create_app(settings: Settings) -> Starlette:
    """Create the ASGI application; the index and store are opened when its lifespan starts."""
    configure_pydicom()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.server = await open_state(settings)
        await app.state.server.audit.record([application_activity(TypeCode.APPLICATION_START)])
        app.state.ready = True
        logger.info("Server: index and object store are open")
        try:
            yield
        finally:
            app.state.ready = False
            app.state.server.audit.record_later([application_activity(TypeCode.APPLICATION_STOP)])
            await app.state.server.audit.close()
            await app.state.server.index.close()
            app.state.server.store.close()
            logger.info("Server: index and object store closed")

    middleware = [Middleware(RequestLogMiddleware)]
    # Also without configured origins, so that a preflight gets a 403 that names the setting.
    middleware.append(
        Middleware(
            OriginAllowListMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
            allow_headers=CORS_ALLOWED_HEADERS,
            expose_headers=CORS_EXPOSED_HEADERS,
            max_age=86400,
        )
    )
    # Outside authentication, so that requests it refuses are recorded too.
    middleware.append(Middleware(AuditMiddleware))
    # Inside CORS, so that 401 and 403 answers carry the CORS headers a browser needs to read them.
    middleware.append(Middleware(AuthenticationMiddleware, settings=settings))
    middleware.append(Middleware(UnexpectedErrorMiddleware))

    app = Starlette(
        routes=[
            Route("/healthz", health, methods=["GET"], name="Health"),
            Route(WADO_URI_PATH, retrieve_wado_uri, methods=["GET"], name="RetrieveWadoUri"),
            dicomweb_mount(),
            federation_mount(),
            admin_mount(),
        ],
        middleware=middleware,
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.ready = False
    return app


async def health(request: Request) -> Response:
    """Answer 200 once the index and the object store are open, 503 before."""
    if not request.app.state.ready:
        return JSONResponse({"status": "starting"}, status_code=503)
    return JSONResponse({"status": "ok"})


class RequestLogMiddleware:
    """Log one line per request: method, endpoint name, status and duration.

    Paths and query strings are not logged, because they carry UIDs and patient attributes.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        scope[APP_ROOT_PATH] = scope.get("root_path", "")
        started = time.perf_counter()
        status = 0

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            endpoint = getattr(scope.get("endpoint"), "__name__", "no route")
            elapsed = (time.perf_counter() - started) * 1000
            logger.info("HTTP %s %s %d %.1f ms", scope["method"], endpoint, status, elapsed)
