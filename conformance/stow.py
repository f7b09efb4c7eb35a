"""STOW-RS checks: the Store transaction of the Studies Service (PS3.18 10.5) and its response
module (PS3.18 Annex I)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from conformance import dicom_json, media
from conformance.archive import DICOM_MULTIPART, STORED_SYNTAX, describe, json_body, media_type_of, parts
from conformance.context import Context
from conformance.multipart import build_multipart, new_boundary
from conformance.registry import Level, check, expect
from conformance.testdata import Instance, new_uid, read_dataset

NOT_DICOM = b"This part is plain text, not a DICOM data set."


def _instance(context: Context, study: str | None = None, **attributes: Any) -> Instance:
    return context.files.instance(
        "ct",
        context.patient("S"),
        study_instance_uid=study or new_uid(),
        series_instance_uid=new_uid(),
        attributes=attributes,
    )


def _instance_with_uid(context: Context, sop_instance_uid: str) -> Instance:
    return context.files.instance(
        "ct",
        context.patient("S"),
        study_instance_uid=new_uid(),
        series_instance_uid=new_uid(),
        sop_instance_uid=sop_instance_uid,
    )


def _response_module(response: httpx.Response) -> dict[str, Any]:
    body = json_body(response)
    expect(
        isinstance(body, dict),
        "the Store Instances Response Module as a DICOM JSON object",
        describe(response),
    )
    return body  # type: ignore[no-any-return]


def _by_uid(body: dict[str, Any], sequence: str) -> dict[str, dict[str, Any]]:
    return {
        dicom_json.text(item, dicom_json.REFERENCED_SOP_INSTANCE_UID) or "": item
        for item in dicom_json.items(body, sequence)
    }


def _failure_reason(item: dict[str, Any]) -> int | None:
    reason = dicom_json.value(item, dicom_json.FAILURE_REASON)
    return reason if isinstance(reason, int) else None


def _post_raw(context: Context, content_type: str, body: bytes, path: str = "/studies") -> httpx.Response:
    return context.archive.request(
        "POST", path, accept=media.DICOM_JSON, headers={"Content-Type": content_type}, content=body
    )


@dataclass(frozen=True)
class StoredPair:
    instances: tuple[Instance, Instance]
    response: httpx.Response


def stored_pair(context: Context) -> StoredPair:
    """Store two instances of one new study in one request, with quoted type and boundary."""
    first = _instance(context)
    second = context.files.instance(
        "ct",
        context.patient("S"),
        study_instance_uid=first.study_instance_uid,
        series_instance_uid=first.series_instance_uid,
        attributes={"InstanceNumber": 2},
    )
    response = context.archive.store([first.data, second.data])
    return StoredPair((first, second), response)


@check("10.5.1/multipart-store", "Store two instances in one multipart/related request (200)")
def multipart_store(context: Context) -> None:
    response = context.fixture(stored_pair).response
    expect(response.status_code == 200, "200 (OK) for two valid instances", describe(response))
    expect(
        media_type_of(response) == media.DICOM_JSON,
        "the response as application/dicom+json, the media type asked for",
        describe(response),
    )


@check(
    "I.1/referenced-sop-sequence", "Referenced SOP Sequence lists each stored instance with its Retrieve URL"
)
def referenced_sop_sequence(context: Context) -> None:
    pair = context.fixture(stored_pair)
    body = _response_module(pair.response)
    referenced = _by_uid(body, dicom_json.REFERENCED_SOP_SEQUENCE)
    for instance in pair.instances:
        item = referenced.get(instance.sop_instance_uid)
        expect(
            item is not None,
            f"a ReferencedSOPSequence (0008,1199) item for {instance.sop_instance_uid}",
            body,
        )
        assert item is not None
        class_uid = dicom_json.text(item, dicom_json.REFERENCED_SOP_CLASS_UID)
        expect(
            class_uid == instance.sop_class_uid, f"ReferencedSOPClassUID {instance.sop_class_uid}", class_uid
        )
        url = dicom_json.text(item, dicom_json.RETRIEVE_URL) or ""
        expect(url.endswith(instance.path), f"a RetrieveURL (0008,1190) ending in {instance.path}", repr(url))
    expect(
        not dicom_json.items(body, dicom_json.FAILED_SOP_SEQUENCE),
        "no FailedSOPSequence (0008,1198) items",
        dicom_json.items(body, dicom_json.FAILED_SOP_SEQUENCE),
    )


@check("I.1/study-retrieve-url", "The response's Retrieve URL (0008,1190) names the stored study")
def study_retrieve_url(context: Context) -> None:
    pair = context.fixture(stored_pair)
    body = _response_module(pair.response)
    expect(dicom_json.RETRIEVE_URL in body, "a top-level RetrieveURL (0008,1190), a Type 2 attribute", body)
    url = dicom_json.text(body, dicom_json.RETRIEVE_URL) or ""
    study_path = f"/studies/{pair.instances[0].study_instance_uid}"
    expect(
        url == "" or url.endswith(study_path), f"an empty value or a URL ending in {study_path}", repr(url)
    )


@check("I.1/retrieve-url-resolves", "Each instance's Retrieve URL retrieves that instance")
def retrieve_url_resolves(context: Context) -> None:
    pair = context.fixture(stored_pair)
    referenced = _by_uid(_response_module(pair.response), dicom_json.REFERENCED_SOP_SEQUENCE)
    for instance in pair.instances:
        url = dicom_json.text(referenced.get(instance.sop_instance_uid, {}), dicom_json.RETRIEVE_URL)
        expect(bool(url), f"a RetrieveURL for {instance.sop_instance_uid}", referenced)
        response = context.archive.get(str(url), accept=STORED_SYNTAX)
        expect(response.status_code == 200, f"200 (OK) from GET {url}", describe(response))
        found = parts(response)
        expect(len(found) == 1, "one part", f"{len(found)} parts")
        uid = str(read_dataset(found[0].content).get("SOPInstanceUID", ""))
        expect(uid == instance.sop_instance_uid, f"the instance {instance.sop_instance_uid}", uid)


@check("10.5.1/store-to-study", "Store an instance with POST /studies/{study}")
def store_to_study(context: Context) -> None:
    instance = _instance(context)
    response = context.archive.store([instance.data], instance.study_instance_uid)
    expect(response.status_code == 200, "200 (OK)", describe(response))
    body = _response_module(response)
    expect(
        instance.sop_instance_uid in _by_uid(body, dicom_json.REFERENCED_SOP_SEQUENCE),
        f"a ReferencedSOPSequence item for {instance.sop_instance_uid}",
        body,
    )


@check("10.5.1/boundary-unquoted", "Accept an unquoted boundary parameter in the request Content-Type")
def boundary_unquoted(context: Context) -> None:
    boundary = new_boundary()
    instance = _instance(context)
    content_type = f"{DICOM_MULTIPART}; boundary={boundary}"
    response = context.archive.store([instance.data], boundary=boundary, content_type=content_type)
    expect(response.status_code == 200, f"200 (OK) for Content-Type: {content_type}", describe(response))


@check(
    "10.5.1/type-unquoted",
    "Accept an unquoted type parameter (type=application/dicom), as some clients send it",
    Level.RECOMMENDED,
)
def type_unquoted(context: Context) -> None:
    boundary = new_boundary()
    instance = _instance(context)
    content_type = f"{media.MULTIPART_RELATED}; type={media.DICOM}; boundary={boundary}"
    response = context.archive.store([instance.data], boundary=boundary, content_type=content_type)
    expect(response.status_code == 200, f"200 (OK) for Content-Type: {content_type}", describe(response))


@check(
    "10.5.3/study-mismatch-409",
    "An instance sent to another study's path fails with 409 and a Failure Reason",
)
def study_mismatch(context: Context) -> str:
    instance = _instance(context)
    other_study = new_uid()
    response = context.archive.store([instance.data], other_study)
    expect(
        response.status_code == 409,
        "409 (Conflict): the only instance does not belong to the study",
        describe(response),
    )
    body = _response_module(response)
    item = _by_uid(body, dicom_json.FAILED_SOP_SEQUENCE).get(instance.sop_instance_uid)
    expect(item is not None, f"a FailedSOPSequence (0008,1198) item for {instance.sop_instance_uid}", body)
    assert item is not None
    reason = _failure_reason(item)
    expect(reason is not None, "a FailureReason (0008,1197)", item)
    return f"Failure Reason 0x{reason:04X}"


@check(
    "10.5.3/partial-202", "One valid and one non-DICOM part: the valid one is stored and the status is 202"
)
def partial_store(context: Context) -> str:
    instance = _instance(context)
    boundary = new_boundary()
    body = build_multipart([(media.DICOM, instance.data), (media.DICOM, NOT_DICOM)], boundary)
    response = _post_raw(context, f'{DICOM_MULTIPART}; boundary="{boundary}"', body)
    expect(
        response.status_code == 202,
        "202 (Accepted): some instances stored, others failed",
        describe(response),
    )
    module = _response_module(response)
    expect(
        instance.sop_instance_uid in _by_uid(module, dicom_json.REFERENCED_SOP_SEQUENCE),
        f"a ReferencedSOPSequence item for {instance.sop_instance_uid}",
        module,
    )
    failed = dicom_json.items(module, dicom_json.FAILED_SOP_SEQUENCE)
    expect(len(failed) == 1, "one FailedSOPSequence (0008,1198) item, for the non-DICOM part", failed)
    reason = _failure_reason(failed[0])
    expect(reason is not None, "a FailureReason (0008,1197) in the failed item", failed[0])
    return f"Failure Reason 0x{reason:04X} for the non-DICOM part"


@check("10.5.3/none-stored", "A request whose parts all fail returns 400 or 409")
def none_stored(context: Context) -> str:
    boundary = new_boundary()
    body = build_multipart([(media.DICOM, NOT_DICOM), (media.DICOM, NOT_DICOM)], boundary)
    response = _post_raw(context, f'{DICOM_MULTIPART}; boundary="{boundary}"', body)
    expect(response.status_code in (400, 409), "400 (Bad Request) or 409 (Conflict)", describe(response))
    return f"returned {response.status_code}"


@check("10.5.3/unsupported-media-type-415", "A request body that is not multipart/related returns 415")
def unsupported_media_type(context: Context) -> None:
    response = _post_raw(context, "text/plain", NOT_DICOM)
    expect(
        response.status_code == 415,
        "415 (Unsupported Media Type) for Content-Type: text/plain",
        describe(response),
    )


@check("10.5.3/malformed-body-400", "A multipart body without its boundary delimiters returns 400")
def malformed_body(context: Context) -> None:
    content_type = f'{DICOM_MULTIPART}; boundary="{new_boundary()}"'
    response = _post_raw(context, content_type, NOT_DICOM)
    expect(response.status_code == 400, "400 (Bad Request) for a body with no delimiter", describe(response))


@check("10.5.2/duplicate-identical", "Storing the same instance again succeeds", Level.RECOMMENDED)
def duplicate_identical(context: Context) -> None:
    instance = _instance(context)
    for attempt in ("first", "second"):
        response = context.archive.store([instance.data])
        expect(
            response.status_code == 200,
            f"200 (OK) for the {attempt} store of identical bytes",
            describe(response),
        )


@check(
    "10.5.2/duplicate-conflicting",
    "A second instance with the same SOP Instance UID and other content is rejected or replaces the first",
    Level.RECOMMENDED,
)
def duplicate_conflicting(context: Context) -> str:
    first = _instance(context, StudyDescription="First version")
    response = context.archive.store([first.data])
    expect(response.status_code == 200, "200 (OK) for the first version", describe(response))
    second = context.files.instance(
        "ct",
        context.patient("S"),
        study_instance_uid=first.study_instance_uid,
        series_instance_uid=first.series_instance_uid,
        sop_instance_uid=first.sop_instance_uid,
        attributes={"StudyDescription": "Second version"},
    )
    response = context.archive.store([second.data])
    body = _response_module(response)
    failed = _by_uid(body, dicom_json.FAILED_SOP_SEQUENCE).get(first.sop_instance_uid)
    replaced = first.sop_instance_uid in _by_uid(body, dicom_json.REFERENCED_SOP_SEQUENCE)
    expect(
        (response.status_code == 409 and failed is not None)
        or (response.status_code in (200, 202) and replaced),
        "409 with a FailedSOPSequence item, or 200/202 with a ReferencedSOPSequence item",
        describe(response),
    )

    expected_version = "Second version" if replaced else "First version"
    metadata = context.archive.get(first.path + "/metadata", accept=media.DICOM_JSON)
    expect(metadata.status_code == 200, "200 (OK) for the instance metadata", describe(metadata))
    description = dicom_json.text(json_body(metadata)[0], "00081030")
    expect(
        description == expected_version,
        f"StudyDescription {expected_version!r} after the second store",
        repr(description),
    )
    if failed is not None:
        return f"kept the first version; Failure Reason 0x{_failure_reason(failed) or 0:04X}"
    return "replaced the first version"


def _rejected(response: httpx.Response) -> str:
    expect(
        response.status_code in (400, 409),
        "400 or 409: the only instance cannot be stored",
        describe(response),
    )
    if response.status_code == 409:
        failed = dicom_json.items(_response_module(response), dicom_json.FAILED_SOP_SEQUENCE)
        expect(len(failed) == 1, "one FailedSOPSequence (0008,1198) item", failed)
        reason = _failure_reason(failed[0])
        expect(reason is not None, "a FailureReason (0008,1197)", failed[0])
        return f"rejected with Failure Reason 0x{reason:04X}"
    return "rejected with 400"


@check(
    "10.5.2/uid-invalid-characters", "A SOP Instance UID with letters in it is rejected", Level.RECOMMENDED
)
def uid_invalid_characters(context: Context) -> str:
    instance = _instance_with_uid(context, f"{new_uid()}.x1")
    return _rejected(context.archive.store([instance.data]))


@check("10.5.2/uid-too-long", "A SOP Instance UID longer than 64 characters is rejected", Level.RECOMMENDED)
def uid_too_long(context: Context) -> str:
    instance = _instance_with_uid(context, "2.25." + "1" * 70)
    return _rejected(context.archive.store([instance.data]))


@check(
    "10.5.2/uid-missing", "An instance without SOP Instance UID (0008,0018) is rejected", Level.RECOMMENDED
)
def uid_missing(context: Context) -> str:
    instance = _instance(context, SOPInstanceUID=None)
    return _rejected(context.archive.store([instance.data]))


@check(
    "10.5.2/uid-leading-zero",
    "A UID whose only fault is a leading zero in a component is stored, or rejected with a reason",
    Level.RECOMMENDED,
)
def uid_leading_zero(context: Context) -> str:
    instance = _instance_with_uid(context, f"{new_uid()}.05")
    response = context.archive.store([instance.data])
    if response.status_code in (400, 409):
        return _rejected(response)
    expect(response.status_code in (200, 202), "200, 202 (stored) or 409 (rejected)", describe(response))
    item = _by_uid(_response_module(response), dicom_json.REFERENCED_SOP_SEQUENCE).get(
        instance.sop_instance_uid
    )
    expect(
        item is not None, f"a ReferencedSOPSequence item for {instance.sop_instance_uid}", describe(response)
    )
    assert item is not None
    warning = dicom_json.value(item, dicom_json.WARNING_REASON)
    if isinstance(warning, int):
        return f"stored with {response.status_code} and Warning Reason 0x{warning:04X}"
    return f"stored with {response.status_code} and no Warning Reason"


@check(
    "10.5.2/data-set-without-preamble",
    "A data set without preamble and File Meta Information is stored and can be retrieved",
    Level.RECOMMENDED,
)
def data_set_without_preamble(context: Context) -> str:
    instance = context.files.instance(
        "bare", context.patient("S"), study_instance_uid=new_uid(), series_instance_uid=new_uid()
    )
    response = context.archive.store([instance.data])
    expect(response.status_code == 200, "200 (OK)", describe(response))
    retrieved = context.archive.get(instance.path, accept=STORED_SYNTAX)
    expect(retrieved.status_code == 200, "200 (OK) when retrieving it", describe(retrieved))
    found = parts(retrieved)
    expect(len(found) == 1, "one part", f"{len(found)} parts")
    uid = str(read_dataset(found[0].content).get("SOPInstanceUID", ""))
    expect(uid == instance.sop_instance_uid, f"the instance {instance.sop_instance_uid}", uid)
    if found[0].content[128:132] == b"DICM":
        return "stored; retrieved with a preamble and File Meta Information added"
    return "stored; retrieved as sent"
