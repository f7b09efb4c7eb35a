"""Errors as HTTP responses: one mapping from exceptions to status codes and bodies.

Every error body is JSON, ``{"status": 404, "message": "..."}``. The message is written for the
client that sent the request and may quote what it sent; it is never logged.
"""

from __future__ import annotations

import logging

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dicomweb_server.dicom.query import QueryError
from dicomweb_server.errors import ArchiveError
from dicomweb_server.index.database import IndexUnavailable
from dicomweb_server.storage.store import StoreError

logger = logging.getLogger(__name__)


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"status": status, "message": message}, status_code=status, headers=headers)


async def archive_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ArchiveError)
    return error_response(error.http_status, error.message, error.headers)


async def query_error(request: Request, error: Exception) -> Response:
    return error_response(400, str(error))


async def http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    message = error.detail if error.status_code != 404 else "not found"
    return error_response(error.status_code, str(message), dict(error.headers or {}))


async def dependency_error(request: Request, error: Exception) -> Response:
    logger.error("HTTP: a dependency failed: %s", type(error).__name__)
    return error_response(503, "the archive cannot reach its index or object store; try again later")


EXCEPTION_HANDLERS = {
    ArchiveError: archive_error,
    QueryError: query_error,
    HTTPException: http_error,
    IndexUnavailable: dependency_error,
    StoreError: dependency_error,
}


class UnexpectedErrorMiddleware:
    """Turn an unexpected exception into a generic 500 inside the CORS layer.

    Starlette answers unhandled exceptions in its outermost middleware, outside CORS, so a
    browser would see a CORS failure instead of the 500. This middleware sits inside CORS.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = False

        async def send_tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracking)
        except ClientDisconnect:
            # The client closed the connection while its body was read, so no response can
            # reach it, and the server did nothing wrong.
            logger.info("HTTP: the client disconnected during %s", _endpoint_name(scope))
        except Exception:
            logger.exception("HTTP: unexpected error in %s", _endpoint_name(scope))
            if started:
                raise
            response = error_response(500, "the archive failed to process the request; the error is logged")
            await response(scope, receive, send)


def _endpoint_name(scope: Scope) -> str:
    endpoint = scope.get("endpoint")
    return getattr(endpoint, "__name__", "unknown endpoint")
