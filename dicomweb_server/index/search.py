"""QIDO-RS search: the query model compiled to one SQL statement per level.

The caller passes the requester's visibility as a predicate on the ``study`` table; it is
AND-ed into the same statement as the matching conditions, before LIMIT and OFFSET, so pages
and counts are those of what the requester may see. Counts and modalities are computed only
for the studies or series on the returned page.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Select, and_, exists, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnClause

from dicomweb_server.dicom.attributes import QueryLevel
from dicomweb_server.dicom.query import Condition, MatchKind, SearchQuery
from dicomweb_server.index.schema import (
    instance,
    instance_metadata,
    series,
    series_request,
    study,
    study_listing_order,
)

LIKE_ESCAPE = "\\"


@dataclass
class SearchResult:
    """One match, with the stored attributes of its study, series and instance as DICOM JSON."""

    study_instance_uid: str
    study_attributes: dict[str, Any]
    series_instance_uid: str | None = None
    series_attributes: dict[str, Any] = field(default_factory=dict)
    sop_instance_uid: str | None = None
    instance_attributes: dict[str, Any] = field(default_factory=dict)
    modalities_in_study: list[str] = field(default_factory=list)
    number_of_study_related_series: int | None = None
    number_of_study_related_instances: int | None = None
    number_of_series_related_instances: int | None = None


@dataclass
class SearchPage:
    results: list[SearchResult]
    more: bool
    """True when matches exist after this page."""


def _study_columns() -> dict[str, Any]:
    return {
        "StudyInstanceUID": study.c.study_instance_uid,
        "StudyDate": study.c.study_date,
        "StudyTime": study.c.study_time,
        "AccessionNumber": study.c.accession_number,
        "PatientID": study.c.patient_id,
        "IssuerOfPatientID": study.c.issuer_of_patient_id,
        "PatientBirthDate": study.c.patient_birth_date,
        "PatientSex": study.c.patient_sex,
        "StudyID": study.c.study_id,
        "StudyDescription": study.c.study_description,
        "SeriesInstanceUID": series.c.series_instance_uid,
        "Modality": series.c.modality,
        "SeriesNumber": series.c.series_number,
        "SeriesDescription": series.c.series_description,
        "SeriesDate": series.c.series_date,
        "SeriesTime": series.c.series_time,
        "BodyPartExamined": series.c.body_part_examined,
        "PerformedProcedureStepStartDate": series.c.performed_procedure_step_start_date,
        "PerformedProcedureStepStartTime": series.c.performed_procedure_step_start_time,
        "SOPInstanceUID": instance.c.sop_instance_uid,
        "SOPClassUID": instance.c.sop_class_uid,
        "InstanceNumber": instance.c.instance_number,
        "ContentDate": instance.c.content_date,
        "ContentTime": instance.c.content_time,
        "AcquisitionDateTime": instance.c.acquisition_datetime,
    }


COLUMNS = _study_columns()
PERSON_NAME_PREFIXES = {
    "PatientName": "patient_name",
    "ReferringPhysicianName": "referring_physician_name",
}
INTEGER_KEYS = {"SeriesNumber", "InstanceNumber"}


async def search(
    connection: AsyncConnection,
    query: SearchQuery,
    visibility: ColumnElement[bool],
    max_results: int,
    parent_levels: frozenset[QueryLevel] = frozenset(),
) -> SearchPage:
    """Run a search and return one page of results.

    Parameters
    ----------
    visibility
        A predicate on the ``study`` table that is true for the studies the requester may see.
    max_results
        The most results one response returns, whatever ``query.limit`` asks for.
    parent_levels
        Levels above ``query.level`` whose computed attributes (ModalitiesInStudy and the
        related series and instance counts) each result needs, because the response repeats
        the attributes of those levels (PS3.18 10.6.3.3).
    """
    limit = min(query.limit if query.limit is not None else max_results, max_results)
    builders = {
        QueryLevel.STUDY: _search_studies,
        QueryLevel.SERIES: _search_series,
        QueryLevel.INSTANCE: _search_instances,
    }
    statement = builders[query.level](query, visibility)
    rows = (await connection.execute(statement.limit(limit + 1).offset(query.offset))).all()
    more = len(rows) > limit
    rows = rows[:limit]

    if query.level is QueryLevel.STUDY:
        results = await _study_results(connection, rows)
    elif query.level is QueryLevel.SERIES:
        results = await _series_results(connection, rows)
    else:
        results = await _instance_results(connection, rows, _needs_instance_metadata(query))
    await _add_parent_counts(connection, query.level, parent_levels, rows, results)
    return SearchPage(results, more)


async def _add_parent_counts(
    connection: AsyncConnection,
    level: QueryLevel,
    parent_levels: frozenset[QueryLevel],
    rows: Sequence[Any],
    results: list[SearchResult],
) -> None:
    """Fill in the computed attributes of the study and series above each series or instance."""
    if QueryLevel.SERIES in parent_levels and level is QueryLevel.INSTANCE:
        counts = await _series_counts(connection, [row.series_key for row in rows])
        for row, result in zip(rows, results, strict=True):
            result.number_of_series_related_instances = counts[row.series_key]
    if QueryLevel.STUDY in parent_levels and level is not QueryLevel.STUDY:
        summaries = await _study_summaries(connection, [row.study_key for row in rows])
        for row, result in zip(rows, results, strict=True):
            summaries[row.study_key].apply(result)


def _where(query: SearchQuery, visibility: ColumnElement[bool]) -> list[ColumnElement[bool]]:
    return [visibility, *(_compile(condition) for condition in query.conditions)]


def _search_studies(query: SearchQuery, visibility: ColumnElement[bool]) -> Select[Any]:
    return (
        select(study.c.study_key, study.c.study_instance_uid, study.c.attributes)
        .where(*_where(query, visibility))
        .order_by(*study_listing_order())
    )


def _search_series(query: SearchQuery, visibility: ColumnElement[bool]) -> Select[Any]:
    return (
        select(
            series.c.series_key,
            series.c.series_instance_uid,
            series.c.attributes,
            study.c.study_key,
            study.c.study_instance_uid,
            study.c.attributes.label("study_attributes"),
        )
        .select_from(series.join(study, series.c.study_key == study.c.study_key))
        .where(*_where(query, visibility))
        .order_by(study.c.study_key.desc(), series.c.series_number.nulls_last(), series.c.series_key)
    )


def _search_instances(query: SearchQuery, visibility: ColumnElement[bool]) -> Select[Any]:
    return (
        select(
            instance.c.instance_key,
            instance.c.sop_instance_uid,
            instance.c.sop_class_uid,
            instance.c.instance_number,
            instance.c.rows,
            instance.c.columns,
            instance.c.bits_allocated,
            instance.c.number_of_frames,
            instance.c.transfer_syntax_uid,
            series.c.series_key,
            series.c.series_instance_uid,
            series.c.attributes.label("series_attributes"),
            study.c.study_key,
            study.c.study_instance_uid,
            study.c.attributes.label("study_attributes"),
        )
        .select_from(
            instance.join(series, instance.c.series_key == series.c.series_key).join(
                study, instance.c.study_key == study.c.study_key
            )
        )
        .where(*_where(query, visibility))
        .order_by(
            study.c.study_key.desc(),
            series.c.series_number.nulls_last(),
            series.c.series_key,
            instance.c.instance_number.nulls_last(),
            instance.c.instance_key,
        )
    )


def _compile(condition: Condition) -> ColumnElement[bool]:
    path = condition.key.path
    if path == "ModalitiesInStudy":
        matched = _match(series.c.modality, condition)
        predicate: ColumnElement[bool] = exists().where(series.c.study_key == study.c.study_key, matched)
        if condition.empty_matches:
            predicate = or_(predicate, ~exists().where(series.c.study_key == study.c.study_key))
        return predicate
    if path.startswith("RequestAttributesSequence."):
        column = {
            "ScheduledProcedureStepID": series_request.c.scheduled_procedure_step_id,
            "RequestedProcedureID": series_request.c.requested_procedure_id,
        }[condition.key.keyword]
        return exists().where(series_request.c.series_key == series.c.series_key, _match(column, condition))
    if path in PERSON_NAME_PREFIXES:
        return _person_name(PERSON_NAME_PREFIXES[path], condition)
    if condition.time_key is not None:
        # A missing time leaves the bare date, which sorts before every time of that day.
        moment = COLUMNS[path] + func.coalesce(COLUMNS[condition.time_key.path], "")
        return _match(moment, condition)
    column = COLUMNS[path]
    return _with_empty(column, condition, _match(column, condition, integer=path in INTEGER_KEYS))


def _with_empty(column: Any, condition: Condition, predicate: ColumnElement[bool]) -> ColumnElement[bool]:
    if not condition.empty_matches:
        return predicate
    return or_(predicate, column.is_(None), column == "")


def _match(column: Any, condition: Condition, *, integer: bool = False) -> ColumnElement[bool]:
    """Compile the matching types of PS3.4 C.2.2.2 for one column."""
    values: Sequence[Any] = [int(value) for value in condition.values] if integer else condition.values
    if condition.kind is MatchKind.SINGLE_VALUE:
        return column == values[0]
    if condition.kind is MatchKind.VALUE_LIST:
        return column.in_(list(values))
    if condition.kind is MatchKind.WILDCARD:
        if values[0] == "*":
            return literal(True)
        return column.like(like_pattern(values[0]), escape=LIKE_ESCAPE)
    if condition.kind is MatchKind.RANGE:
        bounds = []
        if condition.low is not None:
            bounds.append(column >= condition.low)
        if condition.high is not None:
            bounds.append(column <= condition.high)
        return and_(*bounds)
    raise ValueError(f"matching type {condition.kind} does not apply to {condition.key.path}")


def like_pattern(pattern: str) -> str:
    """Translate DICOM wildcards to a LIKE pattern, escaping the characters LIKE treats specially."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _person_name(prefix: str, condition: Condition) -> ColumnElement[bool]:
    """Match a PN attribute on its folded component groups, or on its words when fuzzy.

    A query of one group matches when any group of the value matches; a query with several
    groups ("Yamada^Tarou=山田^太郎") matches each given group against the same group of the
    value.
    """
    groups = [study.c[f"{prefix}_{name}"] for name in ("alphabetic", "ideographic", "phonetic")]
    words = study.c[f"{prefix}_words"]
    if condition.kind is MatchKind.FUZZY:
        predicate: ColumnElement[bool] = and_(
            *(words.like(f"% {like_pattern(word)}%", escape=LIKE_ESCAPE) for word in condition.values)
        )
        return _with_empty(study.c[prefix], condition, predicate)

    query_groups = condition.values
    kind = condition.kind

    def group_match(column: ColumnClause[Any], value: str) -> ColumnElement[bool]:
        if kind is MatchKind.WILDCARD:
            return column.like(like_pattern(value), escape=LIKE_ESCAPE)
        return column == value

    if len(query_groups) == 1:
        if kind is MatchKind.WILDCARD and query_groups[0].strip("*") == "":
            return literal(True)
        predicate = or_(*(group_match(column, query_groups[0]) for column in groups))
    else:
        predicate = and_(
            *(
                group_match(column, value)
                for column, value in zip(groups, query_groups, strict=False)
                if value
            )
        )
    return _with_empty(study.c[prefix], condition, predicate)


def _needs_instance_metadata(query: SearchQuery) -> bool:
    from dicomweb_server.dicom.attributes import level_of_tag

    instance_columns = {0x00080016, 0x00080018, 0x00200013, 0x00280010, 0x00280011, 0x00280100, 0x00280008}
    return query.include_all or any(
        level_of_tag(tag) is QueryLevel.INSTANCE and tag not in instance_columns for tag in query.include_tags
    )


@dataclass
class _StudySummary:
    """The computed study attributes: ModalitiesInStudy and the related series and instance counts."""

    modalities: set[str] = field(default_factory=set)
    series: int = 0
    instances: int = 0

    def apply(self, result: SearchResult) -> None:
        result.modalities_in_study = sorted(self.modalities)
        result.number_of_study_related_series = self.series
        result.number_of_study_related_instances = self.instances


async def _study_summaries(
    connection: AsyncConnection, study_keys: Sequence[int]
) -> dict[int, _StudySummary]:
    summaries: dict[int, _StudySummary] = defaultdict(_StudySummary)
    keys = list(set(study_keys))
    if not keys:
        return summaries
    for study_key, modality, count in await connection.execute(
        select(series.c.study_key, series.c.modality, func.count())
        .where(series.c.study_key.in_(keys))
        .group_by(series.c.study_key, series.c.modality)
    ):
        summaries[study_key].series += count
        if modality:
            summaries[study_key].modalities.add(modality)
    for study_key, count in await connection.execute(
        select(instance.c.study_key, func.count())
        .where(instance.c.study_key.in_(keys))
        .group_by(instance.c.study_key)
    ):
        summaries[study_key].instances = count
    return summaries


async def _series_counts(connection: AsyncConnection, series_keys: Sequence[int]) -> dict[int, int]:
    counts: dict[int, int] = defaultdict(int)
    keys = list(set(series_keys))
    if not keys:
        return counts
    for series_key, count in await connection.execute(
        select(instance.c.series_key, func.count())
        .where(instance.c.series_key.in_(keys))
        .group_by(instance.c.series_key)
    ):
        counts[series_key] = count
    return counts


async def _study_results(connection: AsyncConnection, rows: Sequence[Any]) -> list[SearchResult]:
    summaries = await _study_summaries(connection, [row.study_key for row in rows])
    results = []
    for row in rows:
        result = SearchResult(
            study_instance_uid=row.study_instance_uid, study_attributes=orjson.loads(row.attributes)
        )
        summaries[row.study_key].apply(result)
        results.append(result)
    return results


async def _series_results(connection: AsyncConnection, rows: Sequence[Any]) -> list[SearchResult]:
    counts = await _series_counts(connection, [row.series_key for row in rows])
    return [
        SearchResult(
            study_instance_uid=row.study_instance_uid,
            study_attributes=orjson.loads(row.study_attributes),
            series_instance_uid=row.series_instance_uid,
            series_attributes=orjson.loads(row.attributes),
            number_of_series_related_instances=counts[row.series_key],
        )
        for row in rows
    ]


async def _instance_results(
    connection: AsyncConnection, rows: Sequence[Any], with_metadata: bool
) -> list[SearchResult]:
    stored: dict[int, dict[str, Any]] = {}
    if with_metadata and rows:
        keys = [row.instance_key for row in rows]
        for instance_key, data in await connection.execute(
            select(instance_metadata.c.instance_key, instance_metadata.c.dicom_json).where(
                instance_metadata.c.instance_key.in_(keys)
            )
        ):
            stored[instance_key] = orjson.loads(zlib.decompress(data))
    return [
        SearchResult(
            study_instance_uid=row.study_instance_uid,
            study_attributes=orjson.loads(row.study_attributes),
            series_instance_uid=row.series_instance_uid,
            series_attributes=orjson.loads(row.series_attributes),
            sop_instance_uid=row.sop_instance_uid,
            instance_attributes=stored.get(row.instance_key) or _instance_columns(row),
        )
        for row in rows
    ]


def _instance_columns(row: Any) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "00080016": {"vr": "UI", "Value": [row.sop_class_uid]},
        "00080018": {"vr": "UI", "Value": [row.sop_instance_uid]},
    }
    for key, vr, value in (
        ("00200013", "IS", row.instance_number),
        ("00280008", "IS", row.number_of_frames),
        ("00280010", "US", row.rows),
        ("00280011", "US", row.columns),
        ("00280100", "US", row.bits_allocated),
    ):
        attributes[key] = {"vr": vr, "Value": [value]} if value is not None else {"vr": vr}
    return attributes
