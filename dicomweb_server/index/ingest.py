"""Recording a stored instance in the index, in one transaction.

The caller has already written the object; this module adds the study and series when they
are new, then the instance with its precomputed DICOM JSON. Every decision that depends on what
is already indexed (duplicates, a study of another patient, a series of another study) is taken
inside the same transaction, so concurrent stores of the same instance end with one row.
"""

from __future__ import annotations

import datetime
import enum
import functools
import zlib
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from dicomweb_server.dicom.attributes import QueryLevel, level_of_tag
from dicomweb_server.dicom.dicom_json import first_integer, first_text, values
from dicomweb_server.dicom.names import person_name_forms
from dicomweb_server.dicom.parse import ParsedInstance
from dicomweb_server.dicom.values import normalize_date, normalize_datetime, normalize_time
from dicomweb_server.index.schema import instance, instance_metadata, series, series_request, study

METADATA_COMPRESSION_LEVEL = 1
"""zlib level for stored instance JSON: level 1 already shrinks it about five times, and is fast."""

# The statements every stored instance runs are built once and given their values as parameters.
# Building a statement costs CPU on every call: about 80 µs for one of these selects, where
# running it on SQLite takes about 135 µs (SQLAlchemy 2.1.9, aiosqlite, 2-core Intel Xeon).
_FIND_INSTANCE = select(instance.c.instance_key, instance.c.content_digest, instance.c.object_key).where(
    instance.c.sop_instance_uid == bindparam("sop_instance_uid")
)
_FIND_STUDY = select(study.c.study_key, study.c.patient_id, study.c.issuer_of_patient_id).where(
    study.c.study_instance_uid == bindparam("study_instance_uid")
)
_FIND_SERIES = select(series.c.series_key, series.c.study_key).where(
    series.c.series_instance_uid == bindparam("series_instance_uid")
)
_INSERT_METADATA = insert(instance_metadata)
_TOUCH_STUDY = update(study).where(study.c.study_key == bindparam("key")).values(updated_at=bindparam("now"))


class RecordOutcome(enum.Enum):
    STORED = "stored"
    REPLACED = "replaced"
    IDENTICAL_DUPLICATE = "identical duplicate"
    CONFLICTING_DUPLICATE = "conflicting duplicate"
    STUDY_OF_OTHER_PATIENT = "study of another patient"
    SERIES_OF_OTHER_STUDY = "series of another study"


@dataclass(frozen=True)
class StoredObjectInfo:
    """Where and how the object of an instance was written."""

    object_key: str
    object_size: int
    content_digest: str


@dataclass(frozen=True)
class RecordResult:
    outcome: RecordOutcome
    replaced_object_key: str | None = None


class RecordRejected(Exception):
    """Raised inside the transaction for every outcome that must write nothing, so it rolls back."""

    def __init__(self, outcome: RecordOutcome) -> None:
        super().__init__(outcome.value)
        self.outcome = outcome


@dataclass(frozen=True)
class ExistingInstance:
    instance_key: int
    content_digest: str
    object_key: str


async def find_existing_instance(
    connection: AsyncConnection, sop_instance_uid: str
) -> ExistingInstance | None:
    row = (await connection.execute(_FIND_INSTANCE, {"sop_instance_uid": sop_instance_uid})).first()
    return ExistingInstance(*row) if row else None


async def record_instance(
    connection: AsyncConnection,
    parsed: ParsedInstance,
    stored: StoredObjectInfo,
    *,
    overwrite: bool,
    now: datetime.datetime,
) -> RecordResult:
    """Insert the study, series and instance rows for a stored object.

    Raises
    ------
    RecordRejected
        For a duplicate, a study of another patient or a series of another study. The
        exception rolls the transaction back; the caller then removes the object it wrote.
    """
    existing = await find_existing_instance(connection, parsed.sop_instance_uid)
    replaced_key = None
    if existing is not None:
        if existing.content_digest == stored.content_digest:
            raise RecordRejected(RecordOutcome.IDENTICAL_DUPLICATE)
        if not overwrite:
            raise RecordRejected(RecordOutcome.CONFLICTING_DUPLICATE)
        await connection.execute(delete(instance).where(instance.c.instance_key == existing.instance_key))
        replaced_key = existing.object_key

    study_key = await _study_key(connection, parsed, now)
    if study_key is None:
        raise RecordRejected(RecordOutcome.STUDY_OF_OTHER_PATIENT)
    series_key = await _series_key(connection, parsed, study_key, now)
    if series_key is None:
        raise RecordRejected(RecordOutcome.SERIES_OF_OTHER_STUDY)

    instance_key = await _insert_instance(connection, parsed, stored, study_key, series_key, now)
    if instance_key is None:
        # Another transaction stored the same SOP Instance UID after the check above.
        raced = await find_existing_instance(connection, parsed.sop_instance_uid)
        same = raced is not None and raced.content_digest == stored.content_digest
        raise RecordRejected(
            RecordOutcome.IDENTICAL_DUPLICATE if same else RecordOutcome.CONFLICTING_DUPLICATE
        )

    await connection.execute(
        _INSERT_METADATA,
        {
            "instance_key": instance_key,
            "dicom_json": zlib.compress(orjson.dumps(parsed.metadata), METADATA_COMPRESSION_LEVEL),
        },
    )
    await connection.execute(_TOUCH_STUDY, {"key": study_key, "now": now})
    outcome = RecordOutcome.REPLACED if replaced_key else RecordOutcome.STORED
    return RecordResult(outcome, replaced_key)


@functools.cache
def _insert_instance_statement(dialect_name: str) -> Any:
    factory = postgresql_insert if dialect_name == "postgresql" else sqlite_insert
    return (
        factory(instance)
        .on_conflict_do_nothing(index_elements=["sop_instance_uid"])
        .returning(instance.c.instance_key)
    )


def _insert_ignoring_conflict(connection: AsyncConnection, table: Any, column: str) -> Any:
    factory = postgresql_insert if connection.dialect.name == "postgresql" else sqlite_insert
    return factory(table).on_conflict_do_nothing(index_elements=[column])


def _level_attributes(parsed: ParsedInstance, level: QueryLevel) -> str:
    selected = {key: value for key, value in parsed.metadata.items() if level_of_tag(int(key, 16)) is level}
    return orjson.dumps(selected).decode()


async def _study_key(
    connection: AsyncConnection, parsed: ParsedInstance, now: datetime.datetime
) -> int | None:
    """Return the key of the instance's study, adding the study when new; None for another patient."""
    metadata = parsed.metadata
    patient_id = first_text(metadata, "PatientID")
    issuer = first_text(metadata, "IssuerOfPatientID")
    row = await _find_study(connection, parsed.study_instance_uid)
    if row is None:
        patient_name = first_text(metadata, "PatientName")
        referring = first_text(metadata, "ReferringPhysicianName")
        statement = _insert_ignoring_conflict(connection, study, "study_instance_uid").values(
            study_instance_uid=parsed.study_instance_uid,
            patient_id=patient_id,
            issuer_of_patient_id=issuer,
            patient_name=patient_name,
            **_name_columns("patient_name", patient_name),
            patient_birth_date=_date(metadata, "PatientBirthDate"),
            patient_sex=first_text(metadata, "PatientSex"),
            study_date=_date(metadata, "StudyDate"),
            study_time=_time(metadata, "StudyTime"),
            accession_number=first_text(metadata, "AccessionNumber"),
            study_id=first_text(metadata, "StudyID"),
            study_description=first_text(metadata, "StudyDescription"),
            referring_physician_name=referring,
            **_name_columns("referring_physician_name", referring),
            attributes=_level_attributes(parsed, QueryLevel.STUDY),
            created_at=now,
            updated_at=now,
        )
        await connection.execute(statement)
        row = await _find_study(connection, parsed.study_instance_uid)
        assert row is not None
    if (row.patient_id, row.issuer_of_patient_id) != (patient_id, issuer):
        return None
    return int(row.study_key)


async def _find_study(connection: AsyncConnection, study_instance_uid: str) -> Any:
    return (await connection.execute(_FIND_STUDY, {"study_instance_uid": study_instance_uid})).first()


async def _series_key(
    connection: AsyncConnection, parsed: ParsedInstance, study_key: int, now: datetime.datetime
) -> int | None:
    """Return the key of the instance's series, adding it when new; None when it has another study."""
    row = await _find_series(connection, parsed.series_instance_uid)
    if row is None:
        metadata = parsed.metadata
        statement = _insert_ignoring_conflict(connection, series, "series_instance_uid").values(
            study_key=study_key,
            series_instance_uid=parsed.series_instance_uid,
            modality=first_text(metadata, "Modality"),
            series_number=first_integer(metadata, "SeriesNumber"),
            series_description=first_text(metadata, "SeriesDescription"),
            series_date=_date(metadata, "SeriesDate"),
            series_time=_time(metadata, "SeriesTime"),
            body_part_examined=first_text(metadata, "BodyPartExamined"),
            performed_procedure_step_start_date=_date(metadata, "PerformedProcedureStepStartDate"),
            performed_procedure_step_start_time=_time(metadata, "PerformedProcedureStepStartTime"),
            attributes=_level_attributes(parsed, QueryLevel.SERIES),
            created_at=now,
        )
        result = await connection.execute(statement)
        row = await _find_series(connection, parsed.series_instance_uid)
        assert row is not None
        if result.rowcount:
            await _insert_requests(connection, int(row.series_key), metadata)
    if int(row.study_key) != study_key:
        return None
    return int(row.series_key)


async def _find_series(connection: AsyncConnection, series_instance_uid: str) -> Any:
    return (await connection.execute(_FIND_SERIES, {"series_instance_uid": series_instance_uid})).first()


async def _insert_requests(connection: AsyncConnection, series_key: int, metadata: dict[str, Any]) -> None:
    rows = [
        {
            "series_key": series_key,
            "requested_procedure_id": first_text(item, "RequestedProcedureID"),
            "scheduled_procedure_step_id": first_text(item, "ScheduledProcedureStepID"),
        }
        for item in values(metadata, "RequestAttributesSequence")
        if isinstance(item, dict)
    ]
    if rows:
        await connection.execute(insert(series_request), rows)


async def _insert_instance(
    connection: AsyncConnection,
    parsed: ParsedInstance,
    stored: StoredObjectInfo,
    study_key: int,
    series_key: int,
    now: datetime.datetime,
) -> int | None:
    row = instance_row(parsed, stored, study_key, series_key, now)
    return (await connection.execute(_insert_instance_statement(connection.dialect.name), row)).scalar()


def instance_row(
    parsed: ParsedInstance,
    stored: StoredObjectInfo,
    study_key: int,
    series_key: int,
    now: datetime.datetime,
) -> dict[str, Any]:
    """Return the values of the ``instance`` row of a parsed and stored instance, without its key."""
    metadata = parsed.metadata
    acquisition = first_text(metadata, "AcquisitionDateTime")
    return {
        "series_key": series_key,
        "study_key": study_key,
        "sop_instance_uid": parsed.sop_instance_uid,
        "sop_class_uid": parsed.sop_class_uid,
        "instance_number": first_integer(metadata, "InstanceNumber"),
        "content_date": _date(metadata, "ContentDate"),
        "content_time": _time(metadata, "ContentTime"),
        "acquisition_datetime": normalize_datetime(acquisition) if acquisition else None,
        "number_of_frames": first_integer(metadata, "NumberOfFrames"),
        "rows": first_integer(metadata, "Rows"),
        "columns": first_integer(metadata, "Columns"),
        "bits_allocated": first_integer(metadata, "BitsAllocated"),
        "transfer_syntax_uid": parsed.transfer_syntax_uid,
        "object_key": stored.object_key,
        "object_size": stored.object_size,
        "content_digest": stored.content_digest,
        "pixel_layout": orjson.dumps(parsed.pixel_data.to_json()).decode() if parsed.pixel_data else None,
        "bulkdata": orjson.dumps(
            {
                path: [location.offset, location.length, location.vr]
                for path, location in parsed.bulkdata.items()
            }
        ).decode(),
        "stored_at": now,
    }


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
