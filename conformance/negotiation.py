"""Content negotiation checks: the Accept header forms of PS3.18 8.7 and RFC 9110 that viewers
send, and the accept query parameter of PS3.18 8.3.3.1."""

from __future__ import annotations

from conformance import media
from conformance.archive import DICOM_MULTIPART, datasets, describe, media_type_of, parts
from conformance.context import Context
from conformance.fixtures import retrieve_study, search_studies
from conformance.registry import Level, check, expect
from conformance.testdata import read_dataset


def _search_path(context: Context) -> str:
    return f"/studies?PatientID={context.fixture(search_studies).patient.patient_id}"


def _expect_search_json(context: Context, accept: str) -> None:
    response = context.archive.get(_search_path(context), accept=accept)
    expect(response.status_code == 200, f"200 (OK) for a search with Accept: {accept}", describe(response))
    expect(media_type_of(response) == media.DICOM_JSON, "application/dicom+json", describe(response))
    expect(len(datasets(response)) == 2, "the two studies of the run", len(datasets(response)))


def _expect_one_instance(context: Context, accept: str) -> None:
    ct = context.fixture(retrieve_study).ct
    response = context.archive.get(ct.path, accept=accept)
    expect(response.status_code == 200, f"200 (OK) for Accept: {accept}", describe(response))
    found = parts(response)
    expect(len(found) == 1, "one part", f"{len(found)} parts")


@check("8.7.5/accept-missing-406", "A request without an Accept header returns 406")
def accept_missing(context: Context) -> None:
    response = context.archive.get_without_accept(_search_path(context))
    expect(
        response.status_code == 406,
        "406 (Not Acceptable), as PS3.18 8.7.5 and 8.7.7 require",
        describe(response),
    )


@check("8.7.7/accept-wildcard", "Accept: */* gets the default media type of a search and of an instance")
def accept_wildcard(context: Context) -> None:
    _expect_search_json(context, "*/*")
    ct = context.fixture(retrieve_study).ct
    response = context.archive.get(ct.path, accept="*/*")
    expect(response.status_code == 200, "200 (OK) for an instance with Accept: */*", describe(response))
    expect(media_type_of(response) == media.MULTIPART_RELATED, "multipart/related", describe(response))


@check("8.7.7/accept-weights", "A list of media ranges with q-values: the preferred supported one is sent")
def accept_weights(context: Context) -> None:
    ct = context.fixture(retrieve_study).ct
    accept = f'{media.MULTIPART_RELATED}; type="{media.DICOM_XML}"; q=0.5, {media.DICOM_JSON}'
    response = context.archive.get(ct.path + "/metadata", accept=accept)
    expect(response.status_code == 200, f"200 (OK) for metadata with Accept: {accept}", describe(response))
    expect(
        media_type_of(response) == media.DICOM_JSON,
        "application/dicom+json, which has the higher q",
        describe(response),
    )


@check(
    "8.7.7/accept-mixed-list",
    "Accept: application/dicom+json, multipart/related (as OHIF sends) for a search",
)
def accept_mixed_list(context: Context) -> None:
    _expect_search_json(context, f"{media.DICOM_JSON}, {DICOM_MULTIPART}")


@check("8.7.7/accept-invalid-ignored", "A malformed media range in the Accept list is ignored")
def accept_invalid_ignored(context: Context) -> None:
    _expect_search_json(context, f"{media.DICOM_JSON}, not-a-media-type")


@check(
    "8.7.3.5.2/transfer-syntax-quoted", 'A quoted transfer-syntax="*" parameter is read like an unquoted one'
)
def transfer_syntax_quoted(context: Context) -> None:
    _expect_one_instance(context, f'{DICOM_MULTIPART}; transfer-syntax="*"')


@check(
    "8.7.7/type-unquoted",
    "An unquoted type=application/dicom parameter, as viewers send it",
    Level.RECOMMENDED,
)
def type_unquoted(context: Context) -> None:
    _expect_one_instance(context, f"{media.MULTIPART_RELATED}; type={media.DICOM}; transfer-syntax=*")


@check(
    "8.7.7/frames-unquoted-accept",
    "Frames with OHIF's Accept: multipart/related; type=application/octet-stream; transfer-syntax=*",
    Level.RECOMMENDED,
)
def frames_unquoted_accept(context: Context) -> None:
    study = context.fixture(retrieve_study)
    instance = study.stored.get("multiframe", study.ct)
    accept = f"{media.MULTIPART_RELATED}; type={media.OCTET_STREAM}; transfer-syntax=*"
    response = context.archive.get(f"{instance.path}/frames/1", accept=accept)
    expect(response.status_code == 200, f"200 (OK) for Accept: {accept}", describe(response))
    expect(len(parts(response)) == 1, "one part", describe(response))


@check("8.3.3.1/accept-query-parameter", "The accept query parameter selects the transfer syntax")
def accept_query_parameter(context: Context) -> None:
    instance = context.fixture(retrieve_study).instance("compressed")
    stored = instance.transfer_syntax_uid
    params = [("accept", f'{DICOM_MULTIPART}; transfer-syntax="{stored}"')]
    response = context.archive.get(instance.path, accept=DICOM_MULTIPART, params=params)
    expect(response.status_code == 200, f"200 (OK) for accept={params[0][1]}", describe(response))
    (part,) = parts(response)
    syntax = str(read_dataset(part.content).file_meta.get("TransferSyntaxUID", ""))
    expect(syntax == stored, f"the transfer syntax {stored} named in the query parameter", syntax)
