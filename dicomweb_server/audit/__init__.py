"""The audit trail: an append-only, hash-chained record of every request and change, and reports from it.

Recording, for code outside this package:

- A request handler describes its request first thing, and adds what it touched::

      audit = request_audit(request)
      audit.describe(EventType.QUERY, "SearchForStudies", level="study", discloses=True)
      audit.involve(study_instance_uid, instances=3)

  The audit middleware (``web.audit``) writes the request's entries before its response starts,
  with the requester, client address, status and failure reason, and the bytes sent when a
  streamed response ends. A response whose entries cannot be written is replaced by a 503.

- Code that changes a record appends its entry in its own write transaction, as the last step::

      await record_change(connection, EventType.PATIENT_RECORD, "authorization.revoke",
                          event_action=EventAction.UPDATE, patient_id=..., objects=[...])

- Other events of a request, such as each query of a peer archive by a federated search, are
  written with ``await record_event(EventType.FEDERATED_QUERY, "FederatedSearchForStudies",
  peer="name", outcome=Outcome.MINOR_FAILURE, failure_reason="timed out", detail={...})``,
  which returns once the entry is committed.

The entry (``AuditEntry``) names the current request's requester; outside a request, the user of
a command (``command_context``) or the archive itself. ``report``, ``exports`` and
``disclosures`` read the trail; import them from their modules.
"""

from dicomweb_server.audit.chain import AuditUnavailable, Verification, verify_chain
from dicomweb_server.audit.context import (
    RequestAudit,
    command_context,
    current,
    record_change,
    record_event,
    request_audit,
)
from dicomweb_server.audit.events import (
    AuditEntry,
    EventAction,
    EventType,
    Outcome,
    RecordObject,
    StudyInvolved,
    TypeCode,
    Who,
)
from dicomweb_server.audit.writer import AuditWriter

__all__ = [
    "AuditEntry",
    "AuditUnavailable",
    "AuditWriter",
    "EventAction",
    "EventType",
    "Outcome",
    "RecordObject",
    "RequestAudit",
    "StudyInvolved",
    "TypeCode",
    "Verification",
    "Who",
    "command_context",
    "current",
    "record_change",
    "record_event",
    "request_audit",
    "verify_chain",
]
