"""Tables of the metadata index, for SQLite and PostgreSQL alike.

Attribute columns are named after the snake_case DICOM keyword and say their tag and VR in a
comment. Columns that are not DICOM attributes (keys, object locations, folded name forms,
timestamps) have names no keyword has. Surrogate keys join the tables and are never sent to
clients.

Dates and times are kept in their normalized text forms (see ``dicom.values``), so range
matching is text comparison on both databases. Person names are kept as received and, for
matching, folded per component group (see ``dicom.names``).
"""

from __future__ import annotations

import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UnaryExpression,
    func,
    literal_column,
)

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)

SurrogateKey = BigInteger().with_variant(Integer(), "sqlite")
"""A BIGINT key, declared INTEGER on SQLite so that it is the rowid and autoincrements."""


class UtcDateTime(TypeDecorator[datetime.datetime]):
    """A point in time stored in UTC and returned timezone-aware on both databases.

    SQLite has no time zone type; the UTC value is stored as fixed-width text, which sorts and
    compares correctly.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("UtcDateTime needs a timezone-aware datetime")
        value = value.astimezone(datetime.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=datetime.UTC)
        return value.astimezone(datetime.UTC)


def person_name_columns(prefix: str) -> list[Column[Any]]:
    """Columns holding the folded forms of one PN attribute, one per component group."""
    return [
        Column(f"{prefix}_alphabetic", Text, comment="alphabetic group, folded"),
        Column(f"{prefix}_ideographic", Text, comment="ideographic group, folded"),
        Column(f"{prefix}_phonetic", Text, comment="phonetic group, folded"),
        Column(f"{prefix}_words", Text, comment="every component word, folded, space-separated"),
    ]


study = Table(
    "study",
    metadata,
    Column("study_key", SurrogateKey, primary_key=True, autoincrement=True),
    Column("study_instance_uid", String(64), nullable=False, unique=True, comment="(0020,000D) UI"),
    Column("patient_id", Text, comment="(0010,0020) LO"),
    Column("issuer_of_patient_id", Text, comment="(0010,0021) LO"),
    Column("patient_name", Text, comment="(0010,0010) PN, as received"),
    *person_name_columns("patient_name"),
    Column("patient_birth_date", String(8), comment="(0010,0030) DA, YYYYMMDD"),
    Column("patient_sex", Text, comment="(0010,0040) CS"),
    Column("study_date", String(8), comment="(0008,0020) DA, YYYYMMDD"),
    Column("study_time", String(13), comment="(0008,0030) TM, HHMMSS.FFFFFF"),
    Column("accession_number", Text, comment="(0008,0050) SH"),
    Column("study_id", Text, comment="(0020,0010) SH"),
    Column("study_description", Text, comment="(0008,1030) LO"),
    Column("referring_physician_name", Text, comment="(0008,0090) PN, as received"),
    *person_name_columns("referring_physician_name"),
    Column("attributes", Text, nullable=False, comment="study and patient attributes as DICOM JSON"),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)


def study_listing_order() -> tuple[UnaryExpression[Any], ...]:
    """Return the order of study search results: newest first, studies without a date or time last.

    Ingest stores an absent or invalid StudyDate or StudyTime as NULL and never as "", so
    sorting NULL as "" gives the order of ``DESC NULLS LAST``. Unlike that clause, the
    expressions can be indexed on SQLite as well, and ``ix_study_newest_first`` indexes them,
    so a page of studies is read in index order instead of sorting every match. The "" is
    written into the SQL text, not bound, because PostgreSQL matches an index expression only
    against a constant.
    """
    return (
        func.coalesce(study.c.study_date, literal_column("''")).desc(),
        func.coalesce(study.c.study_time, literal_column("''")).desc(),
        study.c.study_key.desc(),
    )


# On PostgreSQL a LIKE prefix uses a b-tree index only under the C collation or with
# text_pattern_ops, whose index also serves equality. The name matching of a single group
# ORs all three folded groups, so each group has such an index.
PATTERN_OPS = "text_pattern_ops"

Index(None, study.c.patient_id, study.c.issuer_of_patient_id)
Index(None, study.c.study_date, study.c.study_time, study.c.study_key)
Index("ix_study_newest_first", *study_listing_order())
Index(None, study.c.accession_number)
Index(None, study.c.patient_name_alphabetic, postgresql_ops={"patient_name_alphabetic": PATTERN_OPS})
Index(None, study.c.patient_name_ideographic, postgresql_ops={"patient_name_ideographic": PATTERN_OPS})
Index(None, study.c.patient_name_phonetic, postgresql_ops={"patient_name_phonetic": PATTERN_OPS})

series = Table(
    "series",
    metadata,
    Column("series_key", SurrogateKey, primary_key=True, autoincrement=True),
    Column("study_key", SurrogateKey, ForeignKey("study.study_key", ondelete="CASCADE"), nullable=False),
    Column("series_instance_uid", String(64), nullable=False, unique=True, comment="(0020,000E) UI"),
    Column("modality", Text, comment="(0008,0060) CS"),
    Column("series_number", Integer, comment="(0020,0011) IS"),
    Column("series_description", Text, comment="(0008,103E) LO"),
    Column("series_date", String(8), comment="(0008,0021) DA"),
    Column("series_time", String(13), comment="(0008,0031) TM"),
    Column("body_part_examined", Text, comment="(0018,0015) CS"),
    Column("performed_procedure_step_start_date", String(8), comment="(0040,0244) DA"),
    Column("performed_procedure_step_start_time", String(13), comment="(0040,0245) TM"),
    Column("attributes", Text, nullable=False, comment="series attributes as DICOM JSON"),
    Column("created_at", UtcDateTime, nullable=False),
)
Index(None, series.c.study_key, series.c.series_number)
Index(None, series.c.modality)

series_request = Table(
    "series_request",
    metadata,
    Column("series_request_key", SurrogateKey, primary_key=True, autoincrement=True),
    Column("series_key", SurrogateKey, ForeignKey("series.series_key", ondelete="CASCADE"), nullable=False),
    Column("requested_procedure_id", Text, comment="(0040,1001) SH in (0040,0275)"),
    Column("scheduled_procedure_step_id", Text, comment="(0040,0009) SH in (0040,0275)"),
)
Index(None, series_request.c.series_key)

instance = Table(
    "instance",
    metadata,
    Column("instance_key", SurrogateKey, primary_key=True, autoincrement=True),
    Column("series_key", SurrogateKey, ForeignKey("series.series_key", ondelete="CASCADE"), nullable=False),
    Column("study_key", SurrogateKey, ForeignKey("study.study_key", ondelete="CASCADE"), nullable=False),
    Column("sop_instance_uid", String(64), nullable=False, unique=True, comment="(0008,0018) UI"),
    Column("sop_class_uid", String(64), nullable=False, comment="(0008,0016) UI"),
    Column("instance_number", Integer, comment="(0020,0013) IS"),
    Column("content_date", String(8), comment="(0008,0023) DA"),
    Column("content_time", String(13), comment="(0008,0033) TM"),
    Column("acquisition_datetime", String(21), comment="(0008,002A) DT, without UTC offset"),
    Column("number_of_frames", Integer, comment="(0028,0008) IS"),
    Column("rows", Integer, comment="(0028,0010) US"),
    Column("columns", Integer, comment="(0028,0011) US"),
    Column("bits_allocated", Integer, comment="(0028,0100) US"),
    Column("transfer_syntax_uid", String(64), nullable=False, comment="(0002,0010) UI of the stored object"),
    Column("object_key", Text, nullable=False, comment="key of the Part 10 file in the object store"),
    Column("object_size", BigInteger, nullable=False),
    Column("content_digest", String(64), nullable=False, comment="SHA-256 of the stored object, hex"),
    Column("pixel_layout", Text, comment="frame positions in the stored object, JSON"),
    Column("bulkdata", Text, comment="bulk data positions in the stored object, JSON"),
    Column("stored_at", UtcDateTime, nullable=False),
)
Index(None, instance.c.series_key, instance.c.instance_number)
Index(None, instance.c.study_key)
Index(None, instance.c.sop_class_uid)
Index(None, instance.c.object_key)

instance_metadata = Table(
    "instance_metadata",
    metadata,
    Column(
        "instance_key",
        SurrogateKey,
        ForeignKey("instance.instance_key", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("dicom_json", LargeBinary, nullable=False, comment="the instance as DICOM JSON, zlib-compressed"),
)
