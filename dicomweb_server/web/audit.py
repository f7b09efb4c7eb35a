"""The audit middleware: every request is recorded in the audit trail before its response starts.

It wraps the authentication middleware, so that requests refused for a missing or bad token
(401) or a missing scope (403) are recorded too. For each request it starts a
:class:`~dicomweb_server.audit.context.RequestAudit` that handlers describe, and when the
response starts it writes the request's entry (with the status, and the message of an error
response as the failure reason) and waits for the commit. Only then does the status line go
out: if the entry cannot be written, the client gets a 503 and no data. A streamed response
(no Content-Length) gets a second entry when it ends, with the bytes sent and whether it
completed. The data has left by then, so that entry is queued and the request does not wait.

``GET /healthz`` and OPTIONS requests (the public capabilities and CORS preflights) carry no
data and are not recorded.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import re

import orjson
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dicomweb_server.audit.chain import AuditUnavailable
from dicomweb_server.audit.context import SCOPE_KEY, RequestAudit, activate, deactivate
from dicomweb_server.audit.events import (
    AuditEntry,
    EventAction,
    EventType,
    Outcome,
    TypeCode,
    new_id,
    outcome_of_status,
)
from dicomweb_server.web.context import REQUEST_TIME
from dicomweb_server.web.errors import error_response
from dicomweb_server.web.urls import application_path

logger = logging.getLogger(__name__)

MAX_ERROR_BODY = 64 * 1024
"""Bytes of an error response read for its message; a longer body is recorded without one."""

API_TOKEN_ID = re.compile(r"^dwt_([0-9a-f]{1,32})_")

UNAVAILABLE_MESSAGE = (
    "the archive cannot write its audit trail, so it rejected this request without carrying it out; "
    "try again later"
)


class _AuditFailed(Exception):
    """Raised from ``send`` when the entry of a response could not be written."""


class AuditMiddleware:
    """Record each request in the audit trail before its response starts."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _is_recorded(scope):
            await self.app(scope, receive, send)
            return

        audit = _start(scope)
        token = activate(audit)
        recorder = _ResponseRecorder(audit, scope, send)
        try:
            await self.app(scope, receive, recorder.send)
        except _AuditFailed:
            # NOTE: a STOW-RS request rejected here may have stored (and recorded) its first
            # instances. The 503 does not list them, and storing them again is accepted.
            logger.error("Audit: writing the trail failed; %s responded 503", _endpoint_name(scope))
            recorder.audit_failed = True
            if not recorder.started:
                await error_response(503, UNAVAILABLE_MESSAGE)(scope, receive, send)
        except BaseException as error:
            recorder.error = error
            raise
        finally:
            deactivate(token)
            await recorder.finish()


def _is_recorded(scope: Scope) -> bool:
    if scope["method"] == "OPTIONS":
        return False
    return application_path(scope) != "/healthz"


def _start(scope: Scope) -> RequestAudit:
    headers = Headers(scope=scope)
    client = scope.get("client")
    server = getattr(scope["app"].state, "server", None)
    query = scope.get("query_string", b"").decode("latin-1")
    audit = RequestAudit(
        writer=getattr(server, "audit", None),
        method=scope["method"],
        path=application_path(scope),
        query=query or None,
        address=client[0] if client else None,
        user_agent=headers.get("user-agent"),
    )
    audit.detail["credential"] = describe_credential(headers.get("authorization"))
    scope[SCOPE_KEY] = audit
    return audit


def describe_credential(header: str | None) -> str:
    """Name the credential a request presented, without its secret, such as "API token <id>" or "none"."""
    if header is None:
        return "none"
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return "not a bearer token"
    match = API_TOKEN_ID.match(token.strip())
    if match:
        return f"API token {match.group(1)}"
    return "API token (malformed)" if token.strip().startswith("dwt_") else "JWT or other bearer token"


class _ResponseRecorder:
    """Wraps ``send``: records the request when its response starts, counts the bytes sent."""

    def __init__(self, audit: RequestAudit, scope: Scope, send: Send) -> None:
        self.audit = audit
        self.scope = scope
        self._send = send
        self.started = False
        self.streamed = False
        self.completed = False
        self.bytes_sent = 0
        self.status: int | None = None
        self.content_length: int | None = None
        self.error: BaseException | None = None
        self._held: list[Message] = []
        self.recorded: AuditEntry | None = None
        self.audit_failed = False
        self._held_size = 0

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            await self._start(message)
        elif message["type"] == "http.response.body" and self._held:
            await self._hold_body(message)
        elif message["type"] == "http.response.body":
            self.bytes_sent += len(message.get("body", b""))
            self.completed = not message.get("more_body", False)
            await self._send(message)
        else:
            await self._send(message)

    async def _start(self, message: Message) -> None:
        self.status = int(message["status"])
        headers = Headers(raw=message.get("headers", []))
        self.streamed = "content-length" not in headers
        if not self.streamed and headers["content-length"].isdigit():
            self.content_length = int(headers["content-length"])
        if self.status >= 400:
            # An error body is short; it is read first, so that its message becomes the failure reason.
            self._held = [message]
            return
        await self._record(None)
        self.started = True
        await self._send(message)

    async def _hold_body(self, message: Message) -> None:
        self._held.append(message)
        self._held_size += len(message.get("body", b""))
        if message.get("more_body", False) and self._held_size <= MAX_ERROR_BODY:
            return
        await self._release_held()

    async def _release_held(self) -> None:
        held, self._held = self._held, []
        await self._record(_error_message(held[1:]))
        self.started = True
        for part in held:
            if part["type"] == "http.response.body":
                self.bytes_sent += len(part.get("body", b""))
                self.completed = not part.get("more_body", False)
            await self._send(part)

    async def _record(self, failure_reason: str | None) -> None:
        audit = self.audit
        assert self.status is not None
        audit.event_time = self.scope.get(REQUEST_TIME, audit.event_time)
        _describe_undescribed(audit, self.status, self.scope)
        outcome = audit.outcome if audit.outcome is not None else outcome_of_status(self.status)
        entry = audit.main_entry(self.status, outcome, failure_reason)
        if not self.streamed:
            entry.bytes_sent = self.content_length
        if audit.writer is None:
            return
        try:
            await audit.writer.record([entry])
        except AuditUnavailable as error:
            raise _AuditFailed from error
        self.recorded = entry

    async def finish(self) -> None:
        """Queue the entry of a request that ended without a response, or of a streamed response's end."""
        if self._held and self.error is None:
            # An error response that ended without a last body message still goes out.
            await self._release_held()
        writer = self.audit.writer
        if writer is None:
            return
        if not self.started:
            writer.record_later([self._unanswered()])
            return
        if self.streamed:
            writer.record_later([self._transfer_end()])

    def _unanswered(self) -> AuditEntry:
        audit = self.audit
        audit.event_time = self.scope.get(REQUEST_TIME, audit.event_time)
        _describe_undescribed(audit, self.status or 0, self.scope)
        outcome, reason = Outcome.MINOR_FAILURE, "the client disconnected before the response started"
        if self.audit_failed:
            # Written once the trail works again, so that the refusal itself is on record.
            outcome, reason = Outcome.SERIOUS_FAILURE, "the audit trail could not be written, so 503 was sent"
            return audit.main_entry(503, outcome, reason)
        if self.error is not None:
            outcome = Outcome.SERIOUS_FAILURE
            reason = f"the request failed before its response started ({type(self.error).__name__})"
        return audit.main_entry(self.status, outcome, reason)

    def _transfer_end(self) -> AuditEntry:
        """Return the entry of a streamed response's end: bytes sent, and whether the transfer completed.

        It repeats the request's entry, whose studies the writer has already completed with their
        patients, so the end costs no look-up of its own.
        """
        if self.completed:
            outcome, reason = Outcome.SUCCESS, None
        elif self.error is not None:
            outcome = Outcome.SERIOUS_FAILURE
            reason = f"the transfer was cut off by an error ({type(self.error).__name__})"
        else:
            outcome, reason = Outcome.MINOR_FAILURE, "the client disconnected before the transfer ended"
        request = self.recorded or self.audit.main_entry(self.status, outcome, reason)
        instances = self.audit.instances_sent
        return dataclasses.replace(
            request,
            event_type=EventType.INSTANCES_TRANSFERRED,
            event_action=EventAction.READ,
            type_code=None,
            event_id=new_id(),
            event_time=datetime.datetime.now(datetime.UTC),
            outcome=outcome,
            failure_reason=reason,
            bytes_sent=self.bytes_sent,
            instances=request.instances if instances is None else instances,
            studies=[dataclasses.replace(item) for item in request.studies],
            detail={**request.detail, "completed": self.completed},
            discloses=False,
            requested_studies=[],
        )


ADMIN_EVENT_TYPES = (
    ("/admin/api/authorizations", EventType.PATIENT_RECORD, None),
    ("/admin/api/refusals", EventType.PATIENT_RECORD, None),
    ("/admin/api/quarantine", EventType.INSTANCES_ACCESSED, None),
    ("/admin/api/emergency-access", EventType.SECURITY_ALERT, None),
    ("/admin/api/organisations", EventType.SECURITY_ALERT, TypeCode.SECURITY_CONFIGURATION),
    ("/admin/api/peers", EventType.SECURITY_ALERT, TypeCode.SECURITY_CONFIGURATION),
    ("/admin/api/tokens", EventType.SECURITY_ALERT, TypeCode.USER_SECURITY_ATTRIBUTES_CHANGED),
    ("/admin/api/audit", EventType.AUDIT_LOG_USED, None),
    ("/admin/api/reports", EventType.AUDIT_LOG_USED, None),
)
"""Event types of admin requests whose handlers do not describe them, by path prefix."""

FEDERATED_SEARCH_ENDINGS = ("/studies", "/series", "/instances")


def _describe_undescribed(audit: RequestAudit, status: int, scope: Scope) -> None:
    """Describe a request that no handler described, by its status, path and method."""
    if audit.event_type is not None:
        return
    endpoint = getattr(scope.get("endpoint"), "__name__", None)
    action = (endpoint or "unknown path").removesuffix("_route")
    path, method = audit.path or "", scope["method"]
    if status == 401:
        audit.describe(
            EventType.USER_AUTHENTICATION, "authenticate", type_code=TypeCode.AUTHENTICATION_DECISION
        )
    elif status == 403:
        audit.describe(EventType.SECURITY_ALERT, "authorize", type_code=TypeCode.ACCESS_CONTROL_DECISION)
    elif path.startswith("/admin/"):
        event_type, type_code = next(
            ((kind, code) for prefix, kind, code in ADMIN_EVENT_TYPES if path.startswith(prefix)),
            (EventType.SECURITY_ALERT, TypeCode.SECURITY_CONFIGURATION),
        )
        audit.describe(event_type, action, event_action=_admin_action(method, path), type_code=type_code)
    elif path.startswith("/federation/") and method in ("GET", "HEAD"):
        event_type = (
            EventType.QUERY if path.endswith(FEDERATED_SEARCH_ENDINGS) else EventType.FEDERATED_RETRIEVE
        )
        audit.describe(event_type, action)
    elif path.startswith("/federation/"):
        audit.describe(EventType.IMPORT, action)
    elif method in ("GET", "HEAD"):
        audit.describe(EventType.INSTANCES_ACCESSED, action)
    else:
        audit.describe(EventType.INSTANCES_ACCESSED, action, event_action=_admin_action(method, path))


def _admin_action(method: str, path: str) -> EventAction:
    """Return the EventActionCode of an admin request: read, create, update (revoke) or delete."""
    if method in ("GET", "HEAD"):
        return EventAction.READ
    if method == "DELETE" or path.endswith("/reject"):
        return EventAction.DELETE
    if path.endswith("/revoke"):
        return EventAction.UPDATE
    return EventAction.CREATE


def _error_message(bodies: list[Message]) -> str | None:
    body = b"".join(part.get("body", b"") for part in bodies)
    if len(body) > MAX_ERROR_BODY:
        return None
    try:
        message = orjson.loads(body).get("message")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return message if isinstance(message, str) else None


def _endpoint_name(scope: Scope) -> str:
    return getattr(scope.get("endpoint"), "__name__", "a request")
