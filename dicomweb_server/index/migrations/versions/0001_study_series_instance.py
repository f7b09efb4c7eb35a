"""Create the study, series and instance index.

Revision ID: 0001
Revises:
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "study",
        sa.Column("study_key", KEY, autoincrement=True, nullable=False),
        sa.Column("study_instance_uid", sa.String(length=64), nullable=False, comment="(0020,000D) UI"),
        sa.Column("patient_id", sa.Text(), nullable=True, comment="(0010,0020) LO"),
        sa.Column("issuer_of_patient_id", sa.Text(), nullable=True, comment="(0010,0021) LO"),
        sa.Column("patient_name", sa.Text(), nullable=True, comment="(0010,0010) PN, as received"),
        sa.Column("patient_name_alphabetic", sa.Text(), nullable=True, comment="alphabetic group, folded"),
        sa.Column(
            "patient_name_ideographic",
            sa.Text(),
            nullable=True,
            comment="ideographic group, folded",
        ),
        sa.Column("patient_name_phonetic", sa.Text(), nullable=True, comment="phonetic group, folded"),
        sa.Column(
            "patient_name_words",
            sa.Text(),
            nullable=True,
            comment="every component word, folded, space-separated",
        ),
        sa.Column(
            "patient_birth_date",
            sa.String(length=8),
            nullable=True,
            comment="(0010,0030) DA, YYYYMMDD",
        ),
        sa.Column("patient_sex", sa.Text(), nullable=True, comment="(0010,0040) CS"),
        sa.Column("study_date", sa.String(length=8), nullable=True, comment="(0008,0020) DA, YYYYMMDD"),
        sa.Column(
            "study_time",
            sa.String(length=13),
            nullable=True,
            comment="(0008,0030) TM, HHMMSS.FFFFFF",
        ),
        sa.Column("accession_number", sa.Text(), nullable=True, comment="(0008,0050) SH"),
        sa.Column("study_id", sa.Text(), nullable=True, comment="(0020,0010) SH"),
        sa.Column("study_description", sa.Text(), nullable=True, comment="(0008,1030) LO"),
        sa.Column(
            "referring_physician_name",
            sa.Text(),
            nullable=True,
            comment="(0008,0090) PN, as received",
        ),
        sa.Column(
            "referring_physician_name_alphabetic",
            sa.Text(),
            nullable=True,
            comment="alphabetic group, folded",
        ),
        sa.Column(
            "referring_physician_name_ideographic",
            sa.Text(),
            nullable=True,
            comment="ideographic group, folded",
        ),
        sa.Column(
            "referring_physician_name_phonetic",
            sa.Text(),
            nullable=True,
            comment="phonetic group, folded",
        ),
        sa.Column(
            "referring_physician_name_words",
            sa.Text(),
            nullable=True,
            comment="every component word, folded, space-separated",
        ),
        sa.Column(
            "attributes",
            sa.Text(),
            nullable=False,
            comment="study and patient attributes as DICOM JSON",
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("study_key", name=op.f("pk_study")),
        sa.UniqueConstraint("study_instance_uid", name=op.f("uq_study_study_instance_uid")),
    )
    op.create_index(op.f("ix_study_accession_number"), "study", ["accession_number"], unique=False)
    op.create_index(
        op.f("ix_study_patient_id_issuer_of_patient_id"),
        "study",
        ["patient_id", "issuer_of_patient_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_study_patient_name_alphabetic"), "study", ["patient_name_alphabetic"], unique=False
    )
    op.create_index(
        op.f("ix_study_study_date_study_time_study_key"),
        "study",
        ["study_date", "study_time", "study_key"],
        unique=False,
    )
    op.create_table(
        "series",
        sa.Column("series_key", KEY, autoincrement=True, nullable=False),
        sa.Column("study_key", KEY, nullable=False),
        sa.Column("series_instance_uid", sa.String(length=64), nullable=False, comment="(0020,000E) UI"),
        sa.Column("modality", sa.Text(), nullable=True, comment="(0008,0060) CS"),
        sa.Column("series_number", sa.Integer(), nullable=True, comment="(0020,0011) IS"),
        sa.Column("series_description", sa.Text(), nullable=True, comment="(0008,103E) LO"),
        sa.Column("series_date", sa.String(length=8), nullable=True, comment="(0008,0021) DA"),
        sa.Column("series_time", sa.String(length=13), nullable=True, comment="(0008,0031) TM"),
        sa.Column("body_part_examined", sa.Text(), nullable=True, comment="(0018,0015) CS"),
        sa.Column(
            "performed_procedure_step_start_date",
            sa.String(length=8),
            nullable=True,
            comment="(0040,0244) DA",
        ),
        sa.Column(
            "performed_procedure_step_start_time",
            sa.String(length=13),
            nullable=True,
            comment="(0040,0245) TM",
        ),
        sa.Column("attributes", sa.Text(), nullable=False, comment="series attributes as DICOM JSON"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["study_key"],
            ["study.study_key"],
            name=op.f("fk_series_study_key_study"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("series_key", name=op.f("pk_series")),
        sa.UniqueConstraint("series_instance_uid", name=op.f("uq_series_series_instance_uid")),
    )
    op.create_index(op.f("ix_series_modality"), "series", ["modality"], unique=False)
    op.create_index(
        op.f("ix_series_study_key_series_number"),
        "series",
        ["study_key", "series_number"],
        unique=False,
    )
    op.create_table(
        "instance",
        sa.Column("instance_key", KEY, autoincrement=True, nullable=False),
        sa.Column("series_key", KEY, nullable=False),
        sa.Column("study_key", KEY, nullable=False),
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=False, comment="(0008,0018) UI"),
        sa.Column("sop_class_uid", sa.String(length=64), nullable=False, comment="(0008,0016) UI"),
        sa.Column("instance_number", sa.Integer(), nullable=True, comment="(0020,0013) IS"),
        sa.Column("content_date", sa.String(length=8), nullable=True, comment="(0008,0023) DA"),
        sa.Column("content_time", sa.String(length=13), nullable=True, comment="(0008,0033) TM"),
        sa.Column(
            "acquisition_datetime",
            sa.String(length=21),
            nullable=True,
            comment="(0008,002A) DT, without UTC offset",
        ),
        sa.Column("number_of_frames", sa.Integer(), nullable=True, comment="(0028,0008) IS"),
        sa.Column("rows", sa.Integer(), nullable=True, comment="(0028,0010) US"),
        sa.Column("columns", sa.Integer(), nullable=True, comment="(0028,0011) US"),
        sa.Column("bits_allocated", sa.Integer(), nullable=True, comment="(0028,0100) US"),
        sa.Column(
            "transfer_syntax_uid",
            sa.String(length=64),
            nullable=False,
            comment="(0002,0010) UI of the stored object",
        ),
        sa.Column(
            "object_key",
            sa.Text(),
            nullable=False,
            comment="key of the Part 10 file in the object store",
        ),
        sa.Column("object_size", sa.BigInteger(), nullable=False),
        sa.Column(
            "content_digest",
            sa.String(length=64),
            nullable=False,
            comment="SHA-256 of the stored object, hex",
        ),
        sa.Column(
            "pixel_layout",
            sa.Text(),
            nullable=True,
            comment="frame positions in the stored object, JSON",
        ),
        sa.Column(
            "bulkdata",
            sa.Text(),
            nullable=True,
            comment="bulk data positions in the stored object, JSON",
        ),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["series_key"],
            ["series.series_key"],
            name=op.f("fk_instance_series_key_series"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["study_key"],
            ["study.study_key"],
            name=op.f("fk_instance_study_key_study"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("instance_key", name=op.f("pk_instance")),
        sa.UniqueConstraint("sop_instance_uid", name=op.f("uq_instance_sop_instance_uid")),
    )
    op.create_index(
        op.f("ix_instance_series_key_instance_number"),
        "instance",
        ["series_key", "instance_number"],
        unique=False,
    )
    op.create_index(op.f("ix_instance_sop_class_uid"), "instance", ["sop_class_uid"], unique=False)
    op.create_index(op.f("ix_instance_study_key"), "instance", ["study_key"], unique=False)
    op.create_table(
        "series_request",
        sa.Column("series_request_key", KEY, autoincrement=True, nullable=False),
        sa.Column("series_key", KEY, nullable=False),
        sa.Column(
            "requested_procedure_id",
            sa.Text(),
            nullable=True,
            comment="(0040,1001) SH in (0040,0275)",
        ),
        sa.Column(
            "scheduled_procedure_step_id",
            sa.Text(),
            nullable=True,
            comment="(0040,0009) SH in (0040,0275)",
        ),
        sa.ForeignKeyConstraint(
            ["series_key"],
            ["series.series_key"],
            name=op.f("fk_series_request_series_key_series"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("series_request_key", name=op.f("pk_series_request")),
    )
    op.create_index(op.f("ix_series_request_series_key"), "series_request", ["series_key"], unique=False)
    op.create_table(
        "instance_metadata",
        sa.Column("instance_key", KEY, nullable=False),
        sa.Column(
            "dicom_json",
            sa.LargeBinary(),
            nullable=False,
            comment="the instance as DICOM JSON, zlib-compressed",
        ),
        sa.ForeignKeyConstraint(
            ["instance_key"],
            ["instance.instance_key"],
            name=op.f("fk_instance_metadata_instance_key_instance"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("instance_key", name=op.f("pk_instance_metadata")),
    )


def downgrade() -> None:
    op.drop_table("instance_metadata")
    op.drop_index(op.f("ix_series_request_series_key"), table_name="series_request")
    op.drop_table("series_request")
    op.drop_index(op.f("ix_instance_study_key"), table_name="instance")
    op.drop_index(op.f("ix_instance_sop_class_uid"), table_name="instance")
    op.drop_index(op.f("ix_instance_series_key_instance_number"), table_name="instance")
    op.drop_table("instance")
    op.drop_index(op.f("ix_series_study_key_series_number"), table_name="series")
    op.drop_index(op.f("ix_series_modality"), table_name="series")
    op.drop_table("series")
    op.drop_index(op.f("ix_study_study_date_study_time_study_key"), table_name="study")
    op.drop_index(op.f("ix_study_patient_name_alphabetic"), table_name="study")
    op.drop_index(op.f("ix_study_patient_id_issuer_of_patient_id"), table_name="study")
    op.drop_index(op.f("ix_study_accession_number"), table_name="study")
    op.drop_table("study")
