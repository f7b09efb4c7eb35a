"""What the running request or command did, and who did it: the context every entry is made in.

The audit middleware starts a :class:`RequestAudit` for each request and makes it the current
one (a context variable, so tasks the request starts see it too). Handlers describe the request
on it (event type, level, studies), the authentication middleware names the requester, and the
middleware turns it into entries when the response starts and ends. Code that changes records
(an authorization, a stored instance) calls :func:`record_change` inside its own transaction. The
entry names the current request's requester, the command's user, or the archive itself.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from dicomweb_server.audit.chain import Appended, append
from dicomweb_server.audit.events import (
    ARCHIVE,
    AuditEntry,
    Code,
    EventAction,
    EventType,
    Outcome,
    RecordObject,
    StudyInvolved,
    TypeCode,
    Who,
    new_id,
)
from dicomweb_server.audit.writer import AuditWriter
from dicomweb_server.auth.identity import Requester
from dicomweb_server.index.database import Index

SCOPE_KEY = "dicomweb_server.audit"
"""ASGI scope key of the request's :class:`RequestAudit`."""

_CURRENT: contextvars.ContextVar[RequestAudit | None] = contextvars.ContextVar("audit", default=None)


def who_of(requester: Requester, address: str | None = None, user_agent: str | None = None) -> Who:
    return Who(
        subject=requester.subject,
        organisation=requester.organisation,
        external=requester.external,
        address=address,
        user_agent=user_agent,
    )


class RequestAudit:
    """What one request or command did, gathered while it runs.

    ``describe`` sets the event type of the request's main entry. ``involve`` adds a study the
    request concerned, ``request_studies`` the StudyInstanceUIDs it named, and ``discloses``
    (set by ``describe``) marks the studies involved as sent to the requester. ``outcome``
    overrides the outcome the HTTP status implies, for a STOW-RS response of 202 whose instances
    partly failed. ``instances_sent`` counts what a streamed response sent, for its end entry.
    """

    def __init__(
        self,
        *,
        writer: AuditWriter | None,
        who: Who | None = None,
        event_time: datetime.datetime | None = None,
        method: str | None = None,
        path: str | None = None,
        query: str | None = None,
        address: str | None = None,
        user_agent: str | None = None,
    ) -> None:
        self.writer = writer
        self.request_id = new_id()
        self.event_time = event_time or datetime.datetime.now(datetime.UTC)
        self.method, self.path, self.query = method, path, query
        self.address, self.user_agent = address, user_agent
        self.requester: Requester | None = None
        self.fixed_who = who
        self.event_type: EventType | None = None
        self.event_action: EventAction | None = None
        self.action: str | None = None
        self.level: str | None = None
        self.type_code: Code | None = None
        self.discloses = False
        self.studies: dict[str, int | None] = {}
        self.requested: list[str] = []
        self.objects: list[RecordObject] = []
        self.instances: int | None = None
        self.instances_sent: int | None = None
        self.peer: str | None = None
        self.outcome: Outcome | None = None
        self.detail: dict[str, Any] = {}

    @property
    def who(self) -> Who:
        if self.requester is not None:
            return who_of(self.requester, self.address, self.user_agent)
        return self.fixed_who or Who(subject="anonymous", address=self.address, user_agent=self.user_agent)

    def describe(
        self,
        event_type: EventType,
        action: str,
        *,
        level: str | None = None,
        event_action: EventAction | None = None,
        discloses: bool = False,
        type_code: Code | None = None,
    ) -> None:
        """Set what the request does; handlers call it first, so that a failure is recorded as its kind."""
        self.event_type, self.action, self.level = event_type, action, level
        self.event_action, self.discloses, self.type_code = event_action, discloses, type_code

    def involve(self, study_instance_uid: str, instances: int | None = None) -> None:
        """Add a study the request concerned, with the number of its instances involved when known."""
        known = self.studies.get(study_instance_uid)
        if instances is None:
            self.studies.setdefault(study_instance_uid, known)
            return
        self.studies[study_instance_uid] = (known or 0) + instances

    def request_studies(self, uids: Sequence[str]) -> None:
        """Name the StudyInstanceUIDs the request asked for, in its path or its query."""
        self.requested += [uid for uid in uids if uid not in self.requested]

    def entry(self, event_type: EventType, action: str, **fields: Any) -> AuditEntry:
        """Return an entry of this request or command: its requester, request id and time."""
        fields.setdefault("event_time", datetime.datetime.now(datetime.UTC))
        return AuditEntry(
            event_type=event_type,
            who=self.who,
            action=action,
            request_id=self.request_id,
            requester=self.requester,
            **fields,
        )

    def main_entry(self, status: int | None, outcome: Outcome, failure_reason: str | None) -> AuditEntry:
        """Return the entry of the request itself, as its handler described it."""
        event_type = self.event_type or EventType.INSTANCES_ACCESSED
        total = self.instances
        if total is None and any(count is not None for count in self.studies.values()):
            total = sum(count or 0 for count in self.studies.values())
        return self.entry(
            event_type,
            self.action or "unknown",
            event_time=self.event_time,
            event_action=self.event_action,
            type_code=self.type_code,
            outcome=outcome,
            status=status,
            failure_reason=failure_reason,
            level=self.level,
            method=self.method,
            path=self.path,
            query=self.query,
            studies=[StudyInvolved(uid, count) for uid, count in self.studies.items()],
            objects=list(self.objects),
            instances=total,
            peer=self.peer,
            detail=dict(self.detail),
            discloses=self.discloses and outcome is Outcome.SUCCESS,
            requested_studies=list(self.requested),
        )


def current() -> RequestAudit | None:
    """Return the request or command being recorded, or None outside of one."""
    return _CURRENT.get()


def activate(audit: RequestAudit) -> contextvars.Token[RequestAudit | None]:
    return _CURRENT.set(audit)


def deactivate(token: contextvars.Token[RequestAudit | None]) -> None:
    _CURRENT.reset(token)


def request_audit(request: Any) -> RequestAudit:
    """Return the :class:`RequestAudit` of a Starlette request.

    A request the audit middleware did not see (a handler called directly in a test) gets a
    detached one, whose description goes nowhere, so handlers call it unconditionally.
    """
    found = request.scope.get(SCOPE_KEY)
    if isinstance(found, RequestAudit):
        return found
    detached = RequestAudit(writer=None)
    request.scope[SCOPE_KEY] = detached
    return detached


def application_activity(type_code: Code) -> AuditEntry:
    """Return the entry of a server process starting or stopping (TypeCode.APPLICATION_START or _STOP)."""
    action = "start" if type_code == TypeCode.APPLICATION_START else "stop"
    return AuditEntry(
        event_type=EventType.APPLICATION_ACTIVITY,
        who=ARCHIVE,
        action=action,
        event_time=datetime.datetime.now(datetime.UTC),
        type_code=type_code,
    )


def identify(scope: Any, requester: Requester) -> None:
    """Name the requester of the request an ASGI scope belongs to, as soon as its token is checked.

    The authentication middleware calls it before checking the token's scope, so that a request
    refused for a missing scope is recorded with who sent it.
    """
    audit = scope.get(SCOPE_KEY)
    if isinstance(audit, RequestAudit):
        audit.requester = requester


def _entry(event_type: EventType, action: str, fields: dict[str, Any]) -> AuditEntry:
    audit = current()
    if audit is not None:
        return audit.entry(event_type, action, **fields)
    fields.setdefault("event_time", datetime.datetime.now(datetime.UTC))
    return AuditEntry(event_type=event_type, who=ARCHIVE, action=action, **fields)


async def record_change(
    connection: AsyncConnection, event_type: EventType, action: str, **fields: Any
) -> list[Appended]:
    """Record a change in the caller's write transaction, so the entry commits or rolls back with it.

    ``fields`` are those of :class:`AuditEntry` (``studies``, ``objects``, ``patient_id``,
    ``detail`` ...). Call it as the last step of the transaction, because on PostgreSQL it keeps
    the chain head locked until the commit.

    Raises
    ------
    AuditUnavailable
        When the entry cannot be written; the transaction must roll back.
    """
    return await append(connection, [_entry(event_type, action, fields)])


async def record_event(event_type: EventType, action: str, **fields: Any) -> None:
    """Record an event of the current request that changes nothing, and wait until it is committed.

    Federated searches record each query of a peer with it, before the merged response starts.

    Raises
    ------
    AuditUnavailable
        When the entry cannot be written, or when no request or command is being recorded.
    """
    audit = current()
    if audit is None or audit.writer is None:
        raise RuntimeError("record_event needs a request or command being recorded (see audit.context)")
    await audit.writer.record([audit.entry(event_type, action, **fields)])


@contextlib.asynccontextmanager
async def command_context(index: Index, subject: str) -> AsyncIterator[RequestAudit]:
    """Record what a command does as done by ``subject`` ("cli alice"); write its entries before it ends."""
    audit = RequestAudit(writer=AuditWriter(index), who=Who(subject=subject))
    token = activate(audit)
    try:
        yield audit
    finally:
        deactivate(token)
        assert audit.writer is not None
        await audit.writer.close()
