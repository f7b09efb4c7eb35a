"""The QIDO-RS query parser: parameters to matching conditions, and the errors it names."""

from __future__ import annotations

import pytest

from dicomweb_server.dicom.attributes import QueryLevel
from dicomweb_server.dicom.query import Condition, MatchKind, QueryError, SearchQuery, parse_search

STUDY, SERIES, INSTANCE = QueryLevel.STUDY, QueryLevel.SERIES, QueryLevel.INSTANCE
PATIENT_NAME_TAG = 0x00100010
STUDY_DESCRIPTION_TAG = 0x00081030


def _parse(level: QueryLevel, query: str, scope: dict[str, str] | None = None) -> SearchQuery:
    pairs = [tuple(item.split("=", 1)) for item in query.split("&") if item]
    return parse_search(level, pairs, scope)  # type: ignore[arg-type]


def _condition(query: SearchQuery, path: str) -> Condition:
    condition = query.condition_for(path)
    assert condition is not None, path
    return condition


def _error(level: QueryLevel, query: str) -> str:
    with pytest.raises(QueryError) as raised:
        _parse(level, query)
    return str(raised.value)


def test_query_keyword_and_tag_are_one_attribute() -> None:
    by_keyword = _condition(_parse(STUDY, "PatientID=ABC"), "PatientID")
    by_tag = _condition(_parse(STUDY, "00100020=ABC"), "PatientID")
    assert by_keyword == by_tag
    assert by_keyword.kind is MatchKind.SINGLE_VALUE
    assert by_keyword.values == ("ABC",)


def test_query_lowercase_tag() -> None:
    assert _condition(_parse(STUDY, "0020000d=1.2.3"), "StudyInstanceUID").values == ("1.2.3",)


def test_query_keyword_and_tag_together_is_error() -> None:
    message = _error(STUDY, "PatientID=A&00100020=B")
    assert "00100020" in message
    assert "PatientID" in message


def test_query_uid_list_with_commas() -> None:
    condition = _condition(_parse(STUDY, "StudyInstanceUID=1.2.3,1.2.4"), "StudyInstanceUID")
    assert condition.kind is MatchKind.VALUE_LIST
    assert condition.values == ("1.2.3", "1.2.4")


def test_query_uid_list_with_backslashes() -> None:
    condition = _condition(_parse(SERIES, "SeriesInstanceUID=1.2.3\\1.2.4\\1.2.3"), "SeriesInstanceUID")
    assert condition.kind is MatchKind.VALUE_LIST
    assert condition.values == ("1.2.3", "1.2.4")


def test_query_code_string_list() -> None:
    condition = _condition(_parse(STUDY, "ModalitiesInStudy=CT,MR"), "ModalitiesInStudy")
    assert condition.kind is MatchKind.VALUE_LIST
    assert condition.values == ("CT", "MR")


@pytest.mark.parametrize("pattern", ["*ABC", "A?C", "AB*", "*B*", "?BC"])
def test_query_wildcards_including_leading(pattern: str) -> None:
    condition = _condition(_parse(STUDY, f"AccessionNumber={pattern}"), "AccessionNumber")
    assert condition.kind is MatchKind.WILDCARD
    assert condition.values == (pattern,)


def test_query_wildcard_on_uid_is_error() -> None:
    assert "StudyInstanceUID" in _error(STUDY, "StudyInstanceUID=1.2.*")


def test_query_star_alone_matches_everything() -> None:
    condition = _condition(_parse(STUDY, "AccessionNumber=*"), "AccessionNumber")
    assert condition.values == ("*",)


def test_query_person_name_is_folded() -> None:
    condition = _condition(_parse(STUDY, "PatientName=MÜLLER^Hans^^"), "PatientName")
    assert condition.kind is MatchKind.SINGLE_VALUE
    assert condition.values == ("muller^hans",)


def test_query_person_name_component_groups() -> None:
    condition = _condition(_parse(STUDY, "PatientName=Yamada^Tarou=山田^太郎"), "PatientName")
    assert condition.values == ("yamada^tarou", "山田^太郎")


def test_query_person_name_wildcard() -> None:
    condition = _condition(_parse(STUDY, "PatientName=*ÜLL*"), "PatientName")
    assert condition.kind is MatchKind.WILDCARD
    assert condition.values == ("*ull*",)


def test_query_fuzzy_person_name_is_words() -> None:
    query = _parse(STUDY, "PatientName=Doe^Jo*&fuzzymatching=true")
    condition = _condition(query, "PatientName")
    assert query.fuzzy
    assert condition.kind is MatchKind.FUZZY
    assert condition.values == ("doe", "jo")


def test_query_fuzzy_does_not_change_other_attributes() -> None:
    condition = _condition(_parse(STUDY, "AccessionNumber=AB&fuzzymatching=true"), "AccessionNumber")
    assert condition.kind is MatchKind.SINGLE_VALUE


@pytest.mark.parametrize(
    ("value", "low", "high"),
    [
        ("20240101-20240131", "20240101", "20240131"),
        ("20240101-", "20240101", None),
        ("-20240131", None, "20240131"),
        ("20240115", "20240115", "20240115"),
        ("2024.01.15", "20240115", "20240115"),
    ],
)
def test_query_date_ranges(value: str, low: str | None, high: str | None) -> None:
    condition = _condition(_parse(STUDY, f"StudyDate={value}"), "StudyDate")
    assert condition.kind is MatchKind.RANGE
    assert (condition.low, condition.high) == (low, high)


@pytest.mark.parametrize(
    ("value", "low", "high"),
    [
        ("10-12", "100000.000000", "125959.999999"),
        ("1015-", "101500.000000", None),
        ("-0930", None, "093059.999999"),
        ("101530.5", "101530.500000", "101530.599999"),
    ],
)
def test_query_time_ranges(value: str, low: str | None, high: str | None) -> None:
    condition = _condition(_parse(STUDY, f"StudyTime={value}"), "StudyTime")
    assert (condition.low, condition.high) == (low, high)


@pytest.mark.parametrize(
    ("value", "low", "high"),
    [
        ("2024-2025", "20240101000000.000000", "20251231235959.999999"),
        ("20240115103000-", "20240115103000.000000", None),
        ("-202401151030", None, "20240115103059.999999"),
        ("20240115103000-0500", "20240115103000.000000", "20240115103000.999999"),
        ("20240115-0500-20240116+0100", "20240115000000.000000", "20240116235959.999999"),
    ],
)
def test_query_datetime_ranges(value: str, low: str | None, high: str | None) -> None:
    condition = _condition(_parse(INSTANCE, f"AcquisitionDateTime={value}"), "AcquisitionDateTime")
    assert (condition.low, condition.high) == (low, high)


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("StudyDate=2024011", "2024011"),
        ("StudyDate=20241301", "20241301"),
        ("StudyDate=20240131-20240101", "20240131-20240101"),
        ("StudyDate=-", "StudyDate"),
        ("StudyTime=2561", "2561"),
        ("StudyInstanceUID=1.2.abc", "1.2.abc"),
        ("StudyInstanceUID=1.2.3,", "StudyInstanceUID"),
        ("limit=-1", "limit"),
        ("limit=ten", "ten"),
        ("offset=1.5", "offset"),
        ("fuzzymatching=maybe", "maybe"),
        ("emptyvaluematching=yes", "emptyvaluematching"),
        ("NoSuchKeyword=1", "NoSuchKeyword"),
        ("includefield=NoSuchKeyword", "NoSuchKeyword"),
        ("SeriesNumber=1", "SeriesNumber"),
        ("PatientComments=x", "PatientComments"),
        ("StudyDate=20200231", "does not exist in the calendar"),
        ("StudyDate=20210229", "20210229"),
        ("StudyDate=20200101-20200431", "20200431"),
        ("offset=9223372036854775808", "maximum 2147483647"),
        ("offset=2147483648", "2147483648"),
        ("offset=\u00b2", "offset"),
    ],
)
def test_query_invalid_parameter_is_named(query: str, named: str) -> None:
    message = _error(STUDY, query)
    assert named in message
    assert message.startswith("Invalid search:")


def test_query_instance_attribute_in_study_search_is_error() -> None:
    message = _error(STUDY, "SOPInstanceUID=1.2.3")
    assert "SOPInstanceUID" in message
    assert "instance" in message


def test_query_unmatchable_empty_value_is_returned() -> None:
    query = _parse(STUDY, "PatientComments=")
    assert query.conditions == ()
    assert 0x00104000 in query.include_tags


def test_query_empty_value_is_return_key() -> None:
    query = _parse(STUDY, "PatientName=")
    assert query.conditions == ()
    assert PATIENT_NAME_TAG in query.include_tags


def test_query_includefield_repeated_and_lists() -> None:
    query = _parse(STUDY, "includefield=StudyDescription&includefield=00101010,PatientWeight")
    assert {STUDY_DESCRIPTION_TAG, 0x00101010, 0x00101030} <= query.include_tags
    assert not query.include_all


def test_query_includefield_all() -> None:
    assert _parse(STUDY, "includefield=all").include_all


def test_query_limit_and_offset() -> None:
    query = _parse(STUDY, "limit=10&offset=20")
    assert (query.limit, query.offset) == (10, 20)


def test_query_offset_at_maximum() -> None:
    assert _parse(STUDY, "offset=2147483647").offset == 2147483647


def test_query_limit_of_many_digits_is_large() -> None:
    query = _parse(STUDY, "limit=" + "9" * 5000)
    assert query.limit == 10**18


def test_query_datetime_without_day_is_bound() -> None:
    condition = _condition(_parse(INSTANCE, "AcquisitionDateTime=202002"), "AcquisitionDateTime")
    assert condition.high == "20200231235959.999999"


def test_query_leap_day_accepted() -> None:
    condition = _condition(_parse(STUDY, "StudyDate=20200229"), "StudyDate")
    assert (condition.low, condition.high) == ("20200229", "20200229")


def test_query_no_limit_by_default() -> None:
    query = _parse(STUDY, "")
    assert (query.limit, query.offset) == (None, 0)


def test_query_multiple_value_matching_false_warns() -> None:
    query = _parse(STUDY, "multiplevaluematching=false")
    assert len(query.warnings) == 1
    assert "multiplevaluematching" in query.warnings[0]


def test_query_multiple_value_matching_true_is_silent() -> None:
    assert _parse(STUDY, "multiplevaluematching=true").warnings == ()


def test_query_empty_value_matching_marks_conditions() -> None:
    query = _parse(STUDY, "AccessionNumber=A1&emptyvaluematching=true")
    assert _condition(query, "AccessionNumber").empty_matches


def test_query_scope_becomes_conditions() -> None:
    query = _parse(INSTANCE, "", {"StudyInstanceUID": "1.2.3", "SeriesInstanceUID": "1.2.3.4"})
    assert _condition(query, "StudyInstanceUID").values == ("1.2.3",)
    assert _condition(query, "SeriesInstanceUID").values == ("1.2.3.4",)


def test_query_scope_given_again_is_error() -> None:
    with pytest.raises(QueryError) as raised:
        parse_search(SERIES, [("StudyInstanceUID", "1.2.4")], {"StudyInstanceUID": "1.2.3"})
    assert "StudyInstanceUID" in str(raised.value)


def test_query_parent_attributes_allowed_below_their_level() -> None:
    query = _parse(INSTANCE, "PatientID=A&Modality=CT&SOPClassUID=1.2.840.10008.5.1.4.1.1.2")
    assert {condition.key.path for condition in query.conditions} == {"PatientID", "Modality", "SOPClassUID"}


def test_query_sequence_attribute_path() -> None:
    query = _parse(SERIES, "RequestAttributesSequence.ScheduledProcedureStepID=SPS1")
    assert _condition(query, "RequestAttributesSequence.ScheduledProcedureStepID").values == ("SPS1",)


def test_query_integer_list() -> None:
    condition = _condition(_parse(INSTANCE, "InstanceNumber=1,02,3"), "InstanceNumber")
    assert condition.kind is MatchKind.VALUE_LIST
    assert condition.values == ("1", "2", "3")


def test_query_date_and_time_combine_into_one_range() -> None:
    query = parse_search(
        QueryLevel.STUDY, [("StudyDate", "20230531-20230601"), ("StudyTime", "150000-235959")]
    )
    (condition,) = query.conditions
    assert condition.key.path == "StudyDate"
    assert condition.time_key is not None and condition.time_key.path == "StudyTime"
    assert condition.low == "20230531150000.000000"
    assert condition.high == "20230601235959.999999"


def test_query_date_and_time_open_ends() -> None:
    query = parse_search(QueryLevel.SERIES, [("SeriesDate", "20230531-"), ("SeriesTime", "-1200")])
    (condition,) = query.conditions
    assert condition.low == "20230531000000.000000"
    assert condition.high is None


def test_query_time_alone_is_not_combined() -> None:
    query = parse_search(QueryLevel.STUDY, [("StudyTime", "1000-1100")])
    (condition,) = query.conditions
    assert condition.time_key is None
    assert condition.low == "100000.000000"
