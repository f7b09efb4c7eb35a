"""QIDO-RS checks: the Search transaction of the Studies Service (PS3.18 10.6) with the query
parameters of PS3.18 8.3.4 and the matching rules of PS3.4 C.2.2.2.

Every search names the run's PatientID (or UIDs the run created), so other data in the
archive never changes a result.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from conformance import dicom_json, media
from conformance.archive import QueryParameters, datasets, describe, media_type_of, warnings
from conformance.context import Context
from conformance.dicom_json import SERIES_INSTANCE_UID, SOP_INSTANCE_UID, STUDY_INSTANCE_UID
from conformance.fixtures import SearchStudies, search_studies
from conformance.registry import CheckFailed, Level, check, expect

STUDY_ATTRIBUTES = (
    "00080020",  # StudyDate
    "00080030",  # StudyTime
    "00080050",  # AccessionNumber
    "00080061",  # ModalitiesInStudy
    "00080090",  # ReferringPhysicianName
    "00100010",  # PatientName
    "00100020",  # PatientID
    "00100030",  # PatientBirthDate
    "00100040",  # PatientSex
    "0020000D",  # StudyInstanceUID
    "00200010",  # StudyID
    "00201206",  # NumberOfStudyRelatedSeries
    "00201208",  # NumberOfStudyRelatedInstances
)
"""The study attributes PS3.18 Table 10.6.3-3 requires (Type R and U) in every study result."""

SERIES_ATTRIBUTES = (
    "00080060",  # Modality
    "0020000E",  # SeriesInstanceUID
    "00200011",  # SeriesNumber
    "00201209",  # NumberOfSeriesRelatedInstances
)
"""The series attributes PS3.18 Table 10.6.3-4 requires in every series result."""

INSTANCE_ATTRIBUTES = (
    "00080016",  # SOPClassUID
    "00080018",  # SOPInstanceUID
    "00200013",  # InstanceNumber
)
"""The instance attributes PS3.18 Table 10.6.3-5 requires in every instance result."""

IMAGE_ATTRIBUTES = ("00280010", "00280011", "00280100")
"""Rows, Columns and BitsAllocated: Table 10.6.3-5 requires them "if known", as they are for images."""

ADDITIONAL_RESULTS = "additional results"


def _studies(context: Context) -> SearchStudies:
    return context.fixture(search_studies)


def _request_text(path: str, params: QueryParameters) -> str:
    return f"GET {path}?{urlencode(list(params))}" if params else f"GET {path}"


def _search(context: Context, path: str, params: QueryParameters = ()) -> list[dict[str, Any]]:
    response = context.archive.search(path, params)
    expect(response.status_code == 200, f"200 (OK) for {_request_text(path, params)}", describe(response))
    return datasets(response)


def _expect_uids(results: list[dict[str, Any]], tag: str, expected: list[str], request: str) -> None:
    found = dicom_json.uids(results, tag)
    expect(
        sorted(found) == sorted(expected),
        f"{dicom_json.name(tag)} {sorted(expected)} from {request}",
        sorted(found),
    )


def _search_studies(context: Context, *params: tuple[str, str]) -> list[str]:
    """Search for the run's studies with extra parameters and return the Study Instance UIDs found."""
    studies = _studies(context)
    query = [("PatientID", studies.patient.patient_id), *params]
    return sorted(dicom_json.uids(_search(context, "/studies", query), STUDY_INSTANCE_UID))


def _expect_studies(context: Context, params: list[tuple[str, str]], expected: list[str]) -> None:
    found = _search_studies(context, *params)
    expect(found == sorted(expected), f"the studies {sorted(expected)} for {urlencode(params)}", found)


def _missing(dataset: dict[str, Any], tags: tuple[str, ...]) -> list[str]:
    return [dicom_json.name(tag) for tag in tags if tag not in dataset]


@check("10.6.1/studies", "Search for studies by PatientID")
def search_for_studies(context: Context) -> None:
    studies = _studies(context)
    params = [("PatientID", studies.patient.patient_id)]
    response = context.archive.search("/studies", params)
    expect(response.status_code == 200, "200 (OK)", describe(response))
    expect(media_type_of(response) == media.DICOM_JSON, "application/dicom+json", describe(response))
    _expect_uids(datasets(response), STUDY_INSTANCE_UID, [studies.study_a, studies.study_b], "/studies")


@check("10.6.1/study-series", "Search for the series of a study: /studies/{study}/series")
def search_for_study_series(context: Context) -> None:
    studies = _studies(context)
    path = f"/studies/{studies.study_a}/series"
    _expect_uids(
        _search(context, path), SERIES_INSTANCE_UID, [studies.series_a_ct, studies.series_a_mr], path
    )


@check("10.6.1/study-instances", "Search for the instances of a study: /studies/{study}/instances")
def search_for_study_instances(context: Context) -> None:
    studies = _studies(context)
    path = f"/studies/{studies.study_a}/instances"
    expected = [instance.sop_instance_uid for instance in studies.instances_of(studies.study_a)]
    _expect_uids(_search(context, path), SOP_INSTANCE_UID, expected, path)


@check(
    "10.6.1/series-instances",
    "Search for the instances of a series: /studies/{study}/series/{series}/instances",
)
def search_for_series_instances(context: Context) -> None:
    studies = _studies(context)
    path = f"/studies/{studies.study_a}/series/{studies.series_a_ct}/instances"
    expected = [instance.sop_instance_uid for instance in studies.instances_of(series=studies.series_a_ct)]
    _expect_uids(_search(context, path), SOP_INSTANCE_UID, expected, path)


@check("10.6.1/all-series", "Search for all series by a study-level key: /series?PatientID=")
def search_for_all_series(context: Context) -> None:
    studies = _studies(context)
    results = _search(context, "/series", [("PatientID", studies.patient.patient_id)])
    expected = [studies.series_a_ct, studies.series_a_mr, studies.series_b_ct]
    _expect_uids(results, SERIES_INSTANCE_UID, expected, "/series")


@check("10.6.1/all-instances", "Search for all instances by a study-level key: /instances?PatientID=")
def search_for_all_instances(context: Context) -> None:
    studies = _studies(context)
    results = _search(context, "/instances", [("PatientID", studies.patient.patient_id)])
    _expect_uids(results, SOP_INSTANCE_UID, [i.sop_instance_uid for i in studies.instances], "/instances")


@check("10.6.3.3/study-attributes", "Every study result has the attributes of Table 10.6.3-3")
def study_attributes(context: Context) -> None:
    studies = _studies(context)
    for result in _search(context, "/studies", [("PatientID", studies.patient.patient_id)]):
        missing = _missing(result, (*STUDY_ATTRIBUTES, dicom_json.RETRIEVE_URL))
        expect(not missing, "every required study attribute", f"no {', '.join(missing)}")


@check("10.6.3.3/study-counts", "ModalitiesInStudy and the study's series and instance counts are right")
def study_counts(context: Context) -> None:
    studies = _studies(context)
    expected = {studies.study_a: (["CT", "MR"], 2, 3), studies.study_b: (["CT"], 1, 1)}
    for result in _search(context, "/studies", [("PatientID", studies.patient.patient_id)]):
        uid = dicom_json.text(result, STUDY_INSTANCE_UID) or ""
        modalities = sorted(str(value) for value in dicom_json.values(result, "00080061"))
        series_count = _integer(dicom_json.value(result, "00201206"))
        instance_count = _integer(dicom_json.value(result, "00201208"))
        expected_modalities, expected_series, expected_instances = expected[uid]
        expect(
            modalities == expected_modalities,
            f"ModalitiesInStudy {expected_modalities} for {uid}",
            modalities,
        )
        expect(series_count == expected_series, f"NumberOfStudyRelatedSeries {expected_series}", series_count)
        expect(
            instance_count == expected_instances,
            f"NumberOfStudyRelatedInstances {expected_instances}",
            instance_count,
        )


def _integer(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@check("10.6.3.3/series-attributes", "Every series result has the attributes of Table 10.6.3-4 and its count")
def series_attributes(context: Context) -> None:
    studies = _studies(context)
    counts = {studies.series_a_ct: 2, studies.series_a_mr: 1}
    for result in _search(context, f"/studies/{studies.study_a}/series"):
        missing = _missing(result, (*SERIES_ATTRIBUTES, dicom_json.RETRIEVE_URL))
        expect(not missing, "every required series attribute", f"no {', '.join(missing)}")
        uid = dicom_json.text(result, SERIES_INSTANCE_UID) or ""
        count = _integer(dicom_json.value(result, "00201209"))
        expect(count == counts.get(uid), f"NumberOfSeriesRelatedInstances {counts.get(uid)} for {uid}", count)


@check("10.6.3.3/instance-attributes", "Every instance result has the attributes of Table 10.6.3-5")
def instance_attributes(context: Context) -> None:
    studies = _studies(context)
    for result in _search(context, f"/studies/{studies.study_a}/series/{studies.series_a_ct}/instances"):
        missing = _missing(result, (*INSTANCE_ATTRIBUTES, dicom_json.RETRIEVE_URL))
        expect(not missing, "every required instance attribute", f"no {', '.join(missing)}")


@check(
    "10.6.3.3/instance-image-attributes",
    "Instance results of images carry Rows, Columns and BitsAllocated",
    Level.RECOMMENDED,
)
def instance_image_attributes(context: Context) -> None:
    studies = _studies(context)
    for result in _search(context, f"/studies/{studies.study_a}/instances"):
        missing = _missing(result, IMAGE_ATTRIBUTES)
        expect(not missing, "Rows, Columns and BitsAllocated of an image", f"no {', '.join(missing)}")


@check(
    "10.6.3.3/all-series-study-attributes",
    "Results of /series also carry the study attributes of Table 10.6.3-3",
)
def all_series_study_attributes(context: Context) -> None:
    studies = _studies(context)
    for result in _search(context, "/series", [("PatientID", studies.patient.patient_id)]):
        missing = _missing(result, STUDY_ATTRIBUTES)
        expect(not missing, "the study attributes in each series result", f"no {', '.join(missing)}")


@check(
    "10.6.3.3/all-instances-study-series-attributes",
    "Results of /instances also carry the study and series attributes",
)
def all_instances_attributes(context: Context) -> None:
    studies = _studies(context)
    for result in _search(context, "/instances", [("PatientID", studies.patient.patient_id)]):
        missing = _missing(result, (*STUDY_ATTRIBUTES, *SERIES_ATTRIBUTES))
        expect(
            not missing, "the study and series attributes in each instance result", f"no {', '.join(missing)}"
        )


@check(
    "10.6.3.3/study-instances-series-attributes",
    "Results of /studies/{study}/instances also carry the series attributes",
)
def study_instances_series_attributes(context: Context) -> None:
    studies = _studies(context)
    for result in _search(context, f"/studies/{studies.study_a}/instances"):
        missing = _missing(result, SERIES_ATTRIBUTES)
        expect(not missing, "the series attributes in each instance result", f"no {', '.join(missing)}")


@check("10.6.3/empty-result-200", "A search without matches returns 200 with an empty array")
def empty_result(context: Context) -> str | None:
    params = [("PatientID", f"{_studies(context).patient.patient_id}-NONE")]
    response = context.archive.search("/studies", params)
    if response.status_code == 204:
        raise CheckFailed(
            "expected 200 (OK) with an empty array, as the current edition of PS3.18 requires; got 204 (No "
            "Content), which editions of 2024 and earlier required"
        )
    expect(response.status_code == 200, "200 (OK)", describe(response))
    found = datasets(response)
    expect(found == [], "an empty array", found)
    return None if response.content.strip() else "the body is empty rather than []"


@check("8.3.4.1/keyword-single-value", "Match a date by single value: StudyDate=20240315")
def keyword_single_value(context: Context) -> None:
    _expect_studies(context, [("StudyDate", "20240315")], [_studies(context).study_a])


@check("8.3.4.1/tag-form", "Name attributes by tag: 00100020=<PatientID>&0020000D=<study>")
def tag_form(context: Context) -> None:
    studies = _studies(context)
    params = [("00100020", studies.patient.patient_id), ("0020000D", studies.study_b)]
    _expect_uids(
        _search(context, "/studies", params), STUDY_INSTANCE_UID, [studies.study_b], urlencode(params)
    )


@check("8.3.4.1/uid-list-comma", "Match a UID list separated by commas")
def uid_list_comma(context: Context) -> None:
    studies = _studies(context)
    _expect_studies(
        context,
        [("StudyInstanceUID", f"{studies.study_a},{studies.study_b}")],
        [studies.study_a, studies.study_b],
    )


@check(
    "8.3.4.1/uid-list-backslash",
    "Match a UID list separated by backslashes, as DIMSE and some viewers write it",
    Level.RECOMMENDED,
)
def uid_list_backslash(context: Context) -> None:
    studies = _studies(context)
    _expect_studies(
        context,
        [("StudyInstanceUID", f"{studies.study_a}\\{studies.study_b}")],
        [studies.study_a, studies.study_b],
    )


@check("8.3.4.1/wildcard-star", "Match a person name with a trailing * wildcard: PatientName=Mül*")
def wildcard_star(context: Context) -> None:
    studies = _studies(context)
    _expect_studies(context, [("PatientName", "Mül*")], [studies.study_a, studies.study_b])


@check("8.3.4.1/wildcard-leading", "Match with a leading * wildcard: AccessionNumber=*A1")
def wildcard_leading(context: Context) -> None:
    _expect_studies(context, [("AccessionNumber", "*A1")], [_studies(context).study_a])


@check("8.3.4.1/wildcard-question", "Match with a ? wildcard standing for one character")
def wildcard_question(context: Context) -> None:
    studies = _studies(context)
    pattern = studies.accession_a[:-2] + "?1"
    _expect_studies(context, [("AccessionNumber", pattern)], [studies.study_a, studies.study_b])


@check("8.3.4.1/date-range", "Match a date range: StudyDate=20240101-20241231")
def date_range(context: Context) -> None:
    _expect_studies(context, [("StudyDate", "20240101-20241231")], [_studies(context).study_a])


@check("8.3.4.1/date-range-open", "Match date ranges open at either end: 20240101- and -20231231")
def date_range_open(context: Context) -> None:
    studies = _studies(context)
    _expect_studies(context, [("StudyDate", "20240101-")], [studies.study_a])
    _expect_studies(context, [("StudyDate", "-20231231")], [studies.study_b])


@check("8.3.4.1/time-range", "Match a time range: StudyTime=100000-110000")
def time_range(context: Context) -> None:
    _expect_studies(context, [("StudyTime", "100000-110000")], [_studies(context).study_a])


@check("8.3.4.1/combined-date-time", "StudyDate and StudyTime ranges together match as one date-time range")
def combined_date_time(context: Context) -> None:
    # Study B is from 2023-06-01 14:30, inside 2023-05-31 15:00 to 2023-06-01 23:59:59 (PS3.4
    # C.2.2.2.5), although 14:30 lies outside 15:00-23:59:59 when the time is matched alone.
    params = [("StudyDate", "20230531-20230601"), ("StudyTime", "150000-235959")]
    _expect_studies(context, params, [_studies(context).study_b])


@check("8.3.4.1/modalities-in-study", "Match ModalitiesInStudy against the modalities of a study's series")
def modalities_in_study(context: Context) -> None:
    studies = _studies(context)
    _expect_studies(context, [("ModalitiesInStudy", "MR")], [studies.study_a])
    _expect_studies(context, [("ModalitiesInStudy", "CT")], [studies.study_a, studies.study_b])


@check("8.3.4.1/series-modality", "Match Modality in a search for a study's series")
def series_modality(context: Context) -> None:
    studies = _studies(context)
    path = f"/studies/{studies.study_a}/series"
    _expect_uids(
        _search(context, path, [("Modality", "MR")]), SERIES_INSTANCE_UID, [studies.series_a_mr], path
    )


@check("8.3.4.1/invalid-value-400", "A value the attribute cannot have returns 400: StudyDate=notadate")
def invalid_value(context: Context) -> None:
    response = context.archive.search("/studies", [("StudyDate", "notadate")])
    expect(response.status_code == 400, "400 (Bad Request)", describe(response))


@check(
    "8.3.4.2/fuzzymatching",
    "fuzzymatching=true is applied to person names, or a Warning 299 reports it unsupported",
)
def fuzzy_matching(context: Context) -> str:
    studies = _studies(context)
    params = [("PatientID", studies.patient.patient_id), ("PatientName", "muller"), ("fuzzymatching", "true")]
    response = context.archive.search("/studies", params)
    expect(response.status_code == 200, "200 (OK)", describe(response))
    found = sorted(dicom_json.uids(datasets(response), STUDY_INSTANCE_UID))
    warned = [text for code, text in warnings(response) if code == 299 and "fuzzy" in text.lower()]
    if warned:
        return f"not supported; the archive warned: {warned[0]}"
    expect(
        found == sorted([studies.study_a, studies.study_b]),
        "both studies of Müller^Zoë for PatientName=muller, or a Warning 299 saying fuzzy matching is "
        "not supported",
        found,
    )
    return "applied: muller matched Müller^Zoë"


def _study_a_result(context: Context, params: list[tuple[str, str]]) -> dict[str, Any]:
    studies = _studies(context)
    results = _search(context, "/studies", [("StudyInstanceUID", studies.study_a), *params])
    expect(len(results) == 1, f"one result for {urlencode(params)}", len(results))
    return results[0]


@check("8.3.4.3/includefield-keyword", "includefield=StudyDescription returns that attribute")
def includefield_keyword(context: Context) -> None:
    result = _study_a_result(context, [("includefield", "StudyDescription")])
    expect(
        dicom_json.text(result, "00081030") == "Conformance study A",
        "StudyDescription",
        result.get("00081030"),
    )


@check("8.3.4.3/includefield-tag", "includefield=00081030 (a tag) returns that attribute")
def includefield_tag(context: Context) -> None:
    result = _study_a_result(context, [("includefield", "00081030")])
    expect(
        dicom_json.text(result, "00081030") == "Conformance study A",
        "StudyDescription",
        result.get("00081030"),
    )


@check("8.3.4.3/includefield-list", "includefield takes comma lists and may be repeated")
def includefield_list(context: Context) -> None:
    for params in (
        [("includefield", "StudyDescription,PatientAge")],
        [("includefield", "StudyDescription"), ("includefield", "PatientAge")],
    ):
        result = _study_a_result(context, params)
        missing = _missing(result, ("00081030", "00101010"))
        expect(
            not missing,
            f"StudyDescription and PatientAge for {urlencode(params)}",
            f"no {', '.join(missing)}",
        )


@check("8.3.4.3/includefield-all", "includefield=all returns every available study attribute")
def includefield_all(context: Context) -> None:
    result = _study_a_result(context, [("includefield", "all")])
    missing = _missing(result, ("00081030", "00101010"))
    expect(
        not missing, "StudyDescription and PatientAge among all study attributes", f"no {', '.join(missing)}"
    )


def _additional_results_warning(response_warnings: list[tuple[int, str]]) -> bool:
    return any(code == 299 and ADDITIONAL_RESULTS in text.lower() for code, text in response_warnings)


@check("8.3.4.4/limit", "limit=1 returns one result and a Warning 299 that more results exist")
def limit(context: Context) -> None:
    studies = _studies(context)
    response = context.archive.search("/studies", [("PatientID", studies.patient.patient_id), ("limit", "1")])
    expect(response.status_code == 200, "200 (OK)", describe(response))
    expect(len(datasets(response)) == 1, "one result", len(datasets(response)))
    expect(
        _additional_results_warning(warnings(response)),
        'a Warning header "299 <service>: There are ... additional results that can be requested"',
        response.headers.get_list("warning") or "no Warning header",
    )


@check("8.3.4.4/offset", "limit and offset page through the results without gaps or repeats")
def offset(context: Context) -> None:
    studies = _studies(context)
    pages = []
    for start in ("0", "1"):
        params = [("PatientID", studies.patient.patient_id), ("limit", "1"), ("offset", start)]
        response = context.archive.search("/studies", params)
        expect(response.status_code == 200, f"200 (OK) for offset={start}", describe(response))
        pages += dicom_json.uids(datasets(response), STUDY_INSTANCE_UID)
    expect(
        sorted(pages) == sorted([studies.study_a, studies.study_b]), "each study once over two pages", pages
    )
    expect(
        not _additional_results_warning(warnings(response)),
        "no additional-results warning on the last page",
        response.headers.get_list("warning"),
    )


@check("8.3.4.4/offset-past-end", "An offset past the last match returns 200 with an empty array")
def offset_past_end(context: Context) -> None:
    studies = _studies(context)
    response = context.archive.search(
        "/studies", [("PatientID", studies.patient.patient_id), ("offset", "10")]
    )
    expect(response.status_code == 200, "200 (OK)", describe(response))
    expect(datasets(response) == [], "an empty array", describe(response))


@check("8.3.4.4/idempotent", "The same search twice returns the same results in the same order")
def idempotent(context: Context) -> None:
    studies = _studies(context)
    params = [("PatientID", studies.patient.patient_id)]
    first = dicom_json.uids(_search(context, "/instances", params), SOP_INSTANCE_UID)
    second = dicom_json.uids(_search(context, "/instances", params), SOP_INSTANCE_UID)
    expect(first == second, f"the order {first} again", second)


@check("8.3.4.4/invalid-limit-400", "A limit that is not an unsigned integer returns 400")
def invalid_limit(context: Context) -> None:
    response = context.archive.search("/studies", [("limit", "ten")])
    expect(response.status_code == 400, "400 (Bad Request) for limit=ten", describe(response))
