"""Index rows of whole synthetic studies, for inserting in bulk.

These functions give each column the value ``dicomweb_server.index.ingest.record_instance``
gives it, from the same ``ParsedInstance``. The loader records the first studies through
``record_instance`` itself and compares those rows with what these functions build for the same
studies (:func:`compare_with_index`). A change of the archive's ingest that these functions do
not follow therefore stops the load instead of producing a different index.
"""

from __future__ import annotations

import datetime
import zlib
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from dicomweb_server.dicom.attributes import QueryLevel, level_of_tag
from dicomweb_server.dicom.dicom_json import first_integer, first_text, values
from dicomweb_server.dicom.names import person_name_forms
from dicomweb_server.dicom.parse import ParsedInstance
from dicomweb_server.dicom.values import normalize_date, normalize_time
from dicomweb_server.index.ingest import METADATA_COMPRESSION_LEVEL, StoredObjectInfo, instance_row
from dicomweb_server.index.schema import instance, instance_metadata, series, series_request, study

TABLES = (study, series, series_request, instance, instance_metadata)
"""The tables in the order their rows must be inserted (parents before children)."""

KEY_COLUMNS = {"study_key", "series_key", "series_request_key", "instance_key"}
TIME_COLUMNS = {"created_at", "updated_at", "stored_at"}


@dataclass
class Keys:
    """The next surrogate key of each table; bulk rows give their keys explicitly."""

    study: int
    series: int
    series_request: int
    instance: int


@dataclass
class StudyRows:
    """Rows of one study for each table, keyed by table name."""

    rows: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {table.name: [] for table in TABLES}
    )

    def extend(self, other: StudyRows) -> None:
        for name, rows in other.rows.items():
            self.rows[name].extend(rows)


def study_rows(
    instances: list[tuple[ParsedInstance, StoredObjectInfo]], keys: Keys, now: datetime.datetime
) -> StudyRows:
    """Build the rows of one study whose instances arrive in order, advancing ``keys``."""
    result = StudyRows()
    study_key = keys.study
    keys.study += 1
    result.rows["study"].append(_study_row(instances[0][0], study_key, now))

    series_keys: dict[str, int] = {}
    for parsed, stored in instances:
        series_key = series_keys.get(parsed.series_instance_uid)
        if series_key is None:
            series_key = series_keys[parsed.series_instance_uid] = keys.series
            keys.series += 1
            result.rows["series"].append(_series_row(parsed, study_key, series_key, now))
            result.rows["series_request"].extend(_request_rows(parsed, series_key, keys))
        instance_key = keys.instance
        keys.instance += 1
        result.rows["instance"].append(
            _instance_row(parsed, stored, study_key, series_key, instance_key, now)
        )
        result.rows["instance_metadata"].append(
            {
                "instance_key": instance_key,
                "dicom_json": zlib.compress(orjson.dumps(parsed.metadata), METADATA_COMPRESSION_LEVEL),
            }
        )
    return result


def _level_attributes(parsed: ParsedInstance, level: QueryLevel) -> str:
    selected = {key: value for key, value in parsed.metadata.items() if level_of_tag(int(key, 16)) is level}
    return orjson.dumps(selected).decode()


def _study_row(parsed: ParsedInstance, study_key: int, now: datetime.datetime) -> dict[str, Any]:
    metadata = parsed.metadata
    patient_name = first_text(metadata, "PatientName")
    referring = first_text(metadata, "ReferringPhysicianName")
    return {
        "study_key": study_key,
        "study_instance_uid": parsed.study_instance_uid,
        "patient_id": first_text(metadata, "PatientID"),
        "issuer_of_patient_id": first_text(metadata, "IssuerOfPatientID"),
        "patient_name": patient_name,
        **_name_columns("patient_name", patient_name),
        "patient_birth_date": _date(metadata, "PatientBirthDate"),
        "patient_sex": first_text(metadata, "PatientSex"),
        "study_date": _date(metadata, "StudyDate"),
        "study_time": _time(metadata, "StudyTime"),
        "accession_number": first_text(metadata, "AccessionNumber"),
        "study_id": first_text(metadata, "StudyID"),
        "study_description": first_text(metadata, "StudyDescription"),
        "referring_physician_name": referring,
        **_name_columns("referring_physician_name", referring),
        "attributes": _level_attributes(parsed, QueryLevel.STUDY),
        "created_at": now,
        "updated_at": now,
    }


def _series_row(
    parsed: ParsedInstance, study_key: int, series_key: int, now: datetime.datetime
) -> dict[str, Any]:
    metadata = parsed.metadata
    return {
        "series_key": series_key,
        "study_key": study_key,
        "series_instance_uid": parsed.series_instance_uid,
        "modality": first_text(metadata, "Modality"),
        "series_number": first_integer(metadata, "SeriesNumber"),
        "series_description": first_text(metadata, "SeriesDescription"),
        "series_date": _date(metadata, "SeriesDate"),
        "series_time": _time(metadata, "SeriesTime"),
        "body_part_examined": first_text(metadata, "BodyPartExamined"),
        "performed_procedure_step_start_date": _date(metadata, "PerformedProcedureStepStartDate"),
        "performed_procedure_step_start_time": _time(metadata, "PerformedProcedureStepStartTime"),
        "attributes": _level_attributes(parsed, QueryLevel.SERIES),
        "created_at": now,
    }


def _request_rows(parsed: ParsedInstance, series_key: int, keys: Keys) -> list[dict[str, Any]]:
    rows = []
    for item in values(parsed.metadata, "RequestAttributesSequence"):
        if not isinstance(item, dict):
            continue
        rows.append(
            {
                "series_request_key": keys.series_request,
                "series_key": series_key,
                "requested_procedure_id": first_text(item, "RequestedProcedureID"),
                "scheduled_procedure_step_id": first_text(item, "ScheduledProcedureStepID"),
            }
        )
        keys.series_request += 1
    return rows


def _instance_row(
    parsed: ParsedInstance,
    stored: StoredObjectInfo,
    study_key: int,
    series_key: int,
    instance_key: int,
    now: datetime.datetime,
) -> dict[str, Any]:
    return {"instance_key": instance_key, **instance_row(parsed, stored, study_key, series_key, now)}


def _name_columns(prefix: str, value: str | None) -> dict[str, str | None]:
    forms = person_name_forms(value)
    return {
        f"{prefix}_alphabetic": forms.alphabetic,
        f"{prefix}_ideographic": forms.ideographic,
        f"{prefix}_phonetic": forms.phonetic,
        f"{prefix}_words": forms.words,
    }


def _date(metadata: dict[str, Any], keyword: str) -> str | None:
    text = first_text(metadata, keyword)
    return normalize_date(text) if text else None


def _time(metadata: dict[str, Any], keyword: str) -> str | None:
    text = first_text(metadata, keyword)
    return normalize_time(text) if text else None


async def next_keys(connection: AsyncConnection) -> Keys:
    """Return one more than the largest key in each table."""

    async def after_max(column: Any) -> int:
        value = (await connection.execute(select(column).order_by(column.desc()).limit(1))).scalar()
        return int(value or 0) + 1

    return Keys(
        study=await after_max(study.c.study_key),
        series=await after_max(series.c.series_key),
        series_request=await after_max(series_request.c.series_request_key),
        instance=await after_max(instance.c.instance_key),
    )


async def insert_rows(connection: AsyncConnection, rows: StudyRows) -> None:
    for table in TABLES:
        if rows.rows[table.name]:
            await connection.execute(table.insert(), rows.rows[table.name])


async def compare_with_index(connection: AsyncConnection, expected: StudyRows) -> list[str]:
    """List the differences between ``expected`` and the rows the index holds for the same studies.

    Keys and timestamps are left out, because ``record_instance`` picks both itself and the
    comparison is about the attribute values. Rows are matched by their UID or by position.
    """
    differences = []
    for table, uid_column in (
        (study, "study_instance_uid"),
        (series, "series_instance_uid"),
        (instance, "sop_instance_uid"),
    ):
        uids = [row[uid_column] for row in expected.rows[table.name]]
        stored = {
            row[uid_column]: dict(row)
            for row in (await connection.execute(select(table).where(table.c[uid_column].in_(uids))))
            .mappings()
            .all()
        }
        for row in expected.rows[table.name]:
            actual = stored.get(row[uid_column])
            if actual is None:
                differences.append(f"{table.name} {row[uid_column]} is missing from the index")
                continue
            for column in actual.keys() - row.keys() - KEY_COLUMNS - TIME_COLUMNS:
                differences.append(f"{table.name}.{column} is written by record_instance but not built here")
            for column, value in row.items():
                if column in KEY_COLUMNS | TIME_COLUMNS:
                    continue
                if actual[column] != value:
                    differences.append(
                        f"{table.name}.{column} of {row[uid_column]}: {actual[column]!r} != {value!r}"
                    )
    differences.extend(await _compare_metadata(connection, expected))
    return differences


async def _compare_metadata(connection: AsyncConnection, expected: StudyRows) -> list[str]:
    by_uid = {
        row["sop_instance_uid"]: zlib.decompress(metadata["dicom_json"])
        for row, metadata in zip(expected.rows["instance"], expected.rows["instance_metadata"], strict=True)
    }
    statement = (
        select(instance.c.sop_instance_uid, instance_metadata.c.dicom_json)
        .join(instance_metadata, instance_metadata.c.instance_key == instance.c.instance_key)
        .where(instance.c.sop_instance_uid.in_(list(by_uid)))
    )
    differences = []
    for sop_instance_uid, blob in await connection.execute(statement):
        if orjson.loads(zlib.decompress(blob)) != orjson.loads(by_uid[sop_instance_uid]):
            differences.append(f"instance_metadata of {sop_instance_uid} differs")
    return differences
