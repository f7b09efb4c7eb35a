"""The exceptions every room raises toward the web layer, each with its HTTP status.

One Starlette handler in ``web.errors`` turns them into responses, so the status of an error is
decided where the error is defined and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping


class ArchiveError(Exception):
    """Base of the errors a client can cause or be told about; the message is shown to the client."""

    http_status = 500

    def __init__(self, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = dict(headers or {})


class InvalidRequest(ArchiveError):
    http_status = 400


class Unauthenticated(ArchiveError):
    http_status = 401


class Forbidden(ArchiveError):
    http_status = 403


class NotFound(ArchiveError):
    http_status = 404


class MethodNotAllowed(ArchiveError):
    http_status = 405


class NotAcceptable(ArchiveError):
    http_status = 406


class RequestTimeout(ArchiveError):
    """The client stopped sending the request body before it ended."""

    http_status = 408


class Conflict(ArchiveError):
    http_status = 409


class PayloadTooLarge(ArchiveError):
    http_status = 413


class UnsupportedMediaType(ArchiveError):
    http_status = 415


class DependencyUnavailable(ArchiveError):
    """The index or the object store did not answer; the request may succeed when retried."""

    http_status = 503
