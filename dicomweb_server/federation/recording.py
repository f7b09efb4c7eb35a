"""What federation writes to the audit trail, through the audit package's request recording.

- A federated search is the request's ``query`` entry. It holds the query and, for an external
  requester, this archive's results as disclosures. Each peer searched adds a
  ``federated-query`` entry naming the peer, with the reason when it failed or timed out. The
  peer entries are committed before the merged response starts.
- A retrieval through this archive is the request's ``federated-retrieve`` entry, naming the
  peer and the study; the audit middleware adds the status and, when the stream ends, the bytes
  relayed.
- An import is the request's ``import`` entry, naming the peer the instances were received from
  and the counts stored, already stored and failed; each stored instance also has the entry
  that ingest writes for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from dicomweb_server.audit import (
    EventAction,
    EventType,
    Outcome,
    RecordObject,
    RequestAudit,
    TypeCode,
    record_event,
)
from dicomweb_server.dicom.attributes import QueryLevel
from dicomweb_server.dicom.query import MatchKind, SearchQuery
from dicomweb_server.federation.search import STUDY_INSTANCE_UID, SourceResults
from dicomweb_server.ingest import StoreResult


def describe_search(audit: RequestAudit, action: str, level: QueryLevel) -> None:
    audit.describe(EventType.QUERY, action, level=str(level), discloses=True)


def request_searched_studies(audit: RequestAudit, query: SearchQuery, scope: dict[str, str]) -> None:
    """Name the studies a search requests by UID, so the trail shows requests for hidden ones."""
    uids = [scope["StudyInstanceUID"]] if "StudyInstanceUID" in scope else []
    condition = query.condition_for("StudyInstanceUID")
    if condition is not None and condition.kind in (MatchKind.SINGLE_VALUE, MatchKind.VALUE_LIST):
        uids += list(condition.values)
    audit.request_studies(uids)


def involve_local_results(audit: RequestAudit, datasets: Sequence[dict[str, Any]], external: bool) -> None:
    """Count this archive's results and, for an external requester, name their studies as disclosed."""
    audit.detail["results"] = len(datasets)
    if not external:
        return
    for dataset in datasets:
        values = dataset.get(STUDY_INSTANCE_UID, {}).get("Value") or []
        if values and isinstance(values[0], str):
            audit.involve(values[0], 1 if "00080018" in dataset else None)


async def record_peer_searches(action: str, level: QueryLevel, searched: Sequence[SourceResults]) -> None:
    """Write one ``federated-query`` entry per peer searched and wait until they are committed.

    Raises
    ------
    AuditUnavailable
        When the entries cannot be written, so the search returns 503.
    """
    await asyncio.gather(*(_record_peer_search(action, level, results) for results in searched))


async def _record_peer_search(action: str, level: QueryLevel, results: SourceResults) -> None:
    failure = results.failure
    await record_event(
        EventType.FEDERATED_QUERY,
        action,
        type_code=TypeCode.FEDERATED_QUERY,
        level=str(level),
        peer=results.source,
        outcome=Outcome.SERIOUS_FAILURE if failure else Outcome.SUCCESS,
        failure_reason=failure.reason if failure else None,
        objects=[RecordObject("peer", results.source, results.source)],
        detail={"results": len(results.datasets), "elapsed_ms": round(results.elapsed * 1000)},
    )


def describe_retrieval(audit: RequestAudit, peer_name: str, path: str | None) -> None:
    """Describe a retrieval from a peer; ``path`` is the relayed path, None when it is not one we relay."""
    level = None
    if path is not None:
        segments = path.split("/")
        level = "study"
        if "series" in segments:
            level = "series"
        if "instances" in segments:
            level = "instance"
    audit.describe(
        EventType.FEDERATED_RETRIEVE, "RetrieveFromPeer", level=level, type_code=TypeCode.FEDERATED_RETRIEVE
    )
    audit.peer = peer_name
    audit.objects.append(RecordObject("peer", peer_name, peer_name))
    if path is not None:
        audit.involve(path.split("/")[1])


def describe_import(audit: RequestAudit, peer_name: str, study_instance_uid: str) -> None:
    audit.describe(EventType.IMPORT, "ImportStudyFromPeer", level="study", event_action=EventAction.CREATE)
    audit.peer = peer_name
    audit.objects.append(RecordObject("peer", peer_name, peer_name))
    audit.request_studies([study_instance_uid])


def record_import_results(
    audit: RequestAudit, study_instance_uid: str, results: Sequence[StoreResult], interrupted: str | None
) -> None:
    """Add the outcome of an import to its entry: the instances stored and the counts of each outcome."""
    stored = [result for result in results if result.stored]
    audit.involve(study_instance_uid, len(stored))
    failed = len(results) - len(stored)
    audit.detail.update(
        stored=sum(not result.duplicate for result in stored),
        already_stored=sum(result.duplicate for result in stored),
        failed=failed,
    )
    if interrupted:
        audit.detail["interrupted"] = interrupted
    if failed or interrupted:
        audit.outcome = Outcome.MINOR_FAILURE
