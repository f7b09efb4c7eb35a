"""STOW-RS: the Store transaction of the Studies Service (PS3.18 10.5).

The body is read as a stream of parts; each part is stored on its own as it ends, so one bad
part fails alone and a large request needs no more memory than a small one.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from dicomweb_server.audit import EventAction, EventType, Outcome, request_audit
from dicomweb_server.consent.quarantine import HoldFor
from dicomweb_server.dicom.status import FailureReason
from dicomweb_server.dicom.uids import check_uid
from dicomweb_server.errors import InvalidRequest, PayloadTooLarge, RequestTimeout, UnsupportedMediaType
from dicomweb_server.ingest import StoreResult
from dicomweb_server.web import media_types
from dicomweb_server.web.accept import MediaRange, accepted_ranges, parse_media_type
from dicomweb_server.web.bodies import body_chunks
from dicomweb_server.web.context import requester, state
from dicomweb_server.web.multipart import (
    PartStart,
    TruncatedBody,
    part_chunks,
    read_parts,
)
from dicomweb_server.web.negotiation import require_json
from dicomweb_server.web.responses import warning_header
from dicomweb_server.web.urls import dicomweb_root, instance_url, study_url

logger = logging.getLogger(__name__)

SUPPORTED_REQUEST = 'multipart/related; type="application/dicom"'


async def store_instances(request: Request) -> Response:
    """Store the instances of a request body and answer with the Store Instances Response."""
    request_audit(request).describe(
        EventType.INSTANCES_TRANSFERRED, "StoreInstances", level="instance", event_action=EventAction.CREATE
    )
    expected_study = request.path_params.get("study_instance_uid")
    if expected_study is not None:
        _check_path_uid(expected_study)
    response_type = require_json(accepted_ranges(request))
    content_type = _request_type(request)

    results: list[StoreResult] = []
    warnings: list[str] = []
    try:
        if content_type.media_type == media_types.DICOM:
            results.append(await _store_part(request, body_chunks(request), content_type, expected_study))
        else:
            await _store_multipart(request, content_type, expected_study, results)
    except (TruncatedBody, RequestTimeout) as error:
        if not any(result.stored for result in results):
            raise
        warnings.append(f"{error.message}; the instances listed as stored were stored")

    if not results:
        raise InvalidRequest("the multipart body has no parts; send at least one DICOM instance")
    stored = sum(result.stored for result in results)
    _log(results)
    _record(request, results)
    body = store_instances_response(results, dicomweb_root(request), expected_study)
    headers = {"Warning": warning_header(warnings)} if warnings else {}
    return Response(
        orjson.dumps(body),
        status_code=_status(results, stored, warnings),
        media_type=response_type,
        headers=headers,
    )


def _check_path_uid(uid: str) -> None:
    check = check_uid(uid)
    if not check.usable:
        raise InvalidRequest(f"invalid StudyInstanceUID {uid!r} in the request path: {check.reason}")


def _request_type(request: Request) -> MediaRange:
    header = request.headers.get("content-type")
    if not header:
        raise UnsupportedMediaType(f"the request has no Content-Type; send {SUPPORTED_REQUEST}; boundary=...")
    content_type = parse_media_type(header)
    if content_type.media_type == media_types.DICOM:
        return content_type
    if content_type.media_type != media_types.MULTIPART_RELATED:
        raise UnsupportedMediaType(
            f"unsupported Content-Type {content_type.media_type!r}; send {SUPPORTED_REQUEST}; boundary=..."
        )
    part_type = (content_type.param("type") or media_types.DICOM).lower()
    if part_type != media_types.DICOM:
        raise UnsupportedMediaType(
            f"unsupported multipart type {part_type!r}: storing DICOM JSON or XML with bulk data parts "
            f"is not supported; send {SUPPORTED_REQUEST}"
        )
    if not content_type.param("boundary"):
        raise InvalidRequest("the multipart/related Content-Type has no boundary parameter; add boundary=...")
    return content_type


async def _store_multipart(
    request: Request, content_type: MediaRange, expected_study: str | None, results: list[StoreResult]
) -> None:
    events = read_parts(body_chunks(request), content_type.param("boundary") or "")
    async for event in events:
        if not isinstance(event, PartStart):
            continue
        part_type = parse_media_type(event.headers.get("content-type") or media_types.DICOM)
        chunks = part_chunks(events)
        if part_type.media_type != media_types.DICOM:
            await _drain(chunks)
            results.append(
                StoreResult(
                    failure_reason=FailureReason.CANNOT_UNDERSTAND,
                    message=(
                        f"a part has Content-Type {part_type.media_type!r}; "
                        "every part must be application/dicom"
                    ),
                )
            )
            continue
        results.append(await _store_part(request, chunks, part_type, expected_study))
        await _drain(chunks)


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    async for _ in chunks:
        pass


async def _store_part(
    request: Request, chunks: AsyncIterator[bytes], part_type: MediaRange, expected_study: str | None
) -> StoreResult:
    try:
        return await state(request).ingest.store_stream(
            chunks,
            transfer_syntax_hint=part_type.param("transfer-syntax"),
            expected_study_instance_uid=expected_study,
            hold=_quarantine_for(request),
        )
    except PayloadTooLarge as error:
        return StoreResult(failure_reason=FailureReason.OUT_OF_RESOURCES, message=error.message)


def _quarantine_for(request: Request) -> HoldFor | None:
    """Return where an external organisation's instances are held until an administrator decides."""
    sender = requester(request)
    if sender.affiliated or sender.organisation_key is None:
        return None
    return HoldFor(sender.organisation_key, sender.describe())


def _status(results: list[StoreResult], stored: int, warnings: list[str]) -> int:
    """Derive the HTTP status from the outcomes (PS3.18 Table 10.5.3-1, 2025 edition).

    200 when every instance was stored without warning; 202 when some failed or carry a
    warning; 409 when none was stored.
    """
    if stored == 0:
        return 409
    if stored < len(results) or warnings or any(result.warnings for result in results):
        return 202
    return 200


def store_instances_response(
    results: list[StoreResult], root: str, expected_study: str | None
) -> dict[str, Any]:
    """Build the Store Instances Response Module (PS3.18 Annex I) as DICOM JSON."""
    response: dict[str, Any] = {}
    studies = {result.study_instance_uid for result in results if result.stored}
    study = expected_study or (studies.pop() if len(studies) == 1 else None)
    response["00081190"] = {"vr": "UR", "Value": [study_url(root, study)]} if study else {"vr": "UR"}

    failed = [_failed_item(result) for result in results if not result.stored]
    referenced = [_referenced_item(result, root) for result in results if result.stored]
    if failed:
        response["00081198"] = {"vr": "SQ", "Value": failed}
    if referenced:
        response["00081199"] = {"vr": "SQ", "Value": referenced}
    return response


def _uid_element(value: str | None) -> dict[str, Any]:
    return {"vr": "UI", "Value": [value]} if value else {"vr": "UI"}


def _failed_item(result: StoreResult) -> dict[str, Any]:
    assert result.failure_reason is not None
    return {
        "00000902": {"vr": "LO", "Value": [result.message or ""]},
        "00081150": _uid_element(result.sop_class_uid),
        "00081155": _uid_element(result.sop_instance_uid),
        "00081197": {"vr": "US", "Value": [int(result.failure_reason)]},
    }


def _referenced_item(result: StoreResult, root: str) -> dict[str, Any]:
    assert result.study_instance_uid and result.series_instance_uid and result.sop_instance_uid
    item: dict[str, Any] = {
        "00081150": _uid_element(result.sop_class_uid),
        "00081155": _uid_element(result.sop_instance_uid),
        "00081190": {
            "vr": "UR",
            "Value": [
                instance_url(
                    root, result.study_instance_uid, result.series_instance_uid, result.sop_instance_uid
                )
            ],
        },
    }
    if result.warnings:
        item["00081196"] = {"vr": "US", "Value": [int(result.warnings[0][0])]}
        item["00000902"] = {"vr": "LO", "Value": ["; ".join(text for _, text in result.warnings)]}
    return item


def _record(request: Request, results: list[StoreResult]) -> None:
    """Name the studies stored in the request's audit entry, with the counts of each outcome.

    Each stored instance also has an entry of its own, written with its index rows.
    """
    audit = request_audit(request)
    for result in results:
        if result.stored and result.study_instance_uid:
            audit.involve(result.study_instance_uid, 1)
    failed = sum(not result.stored for result in results)
    audit.detail.update(
        stored=sum(result.stored and not result.duplicate for result in results),
        already_stored=sum(result.duplicate for result in results),
        failed=failed,
    )
    if failed:
        audit.outcome = Outcome.MINOR_FAILURE


def _log(results: list[StoreResult]) -> None:
    stored = sum(result.stored and not result.duplicate for result in results)
    duplicates = sum(result.duplicate for result in results)
    failed = sum(not result.stored for result in results)
    reasons = Counter(int(result.failure_reason) for result in results if result.failure_reason is not None)
    counted = ", ".join(f"0x{reason:04X}: {count}" for reason, count in sorted(reasons.items())) or "none"
    logger.info(
        "STOW-RS: %d stored, %d already stored, %d failed (Failure Reasons: %s)",
        stored,
        duplicates,
        failed,
        counted,
    )
