"""Add organisations, API tokens, patient authorizations, emergency access and quarantine.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "organisation",
        sa.Column("organisation_key", KEY, autoincrement=True, nullable=False),
        sa.Column("name", sa.Text(), nullable=False, comment="unique among organisations not deleted"),
        sa.Column(
            "affiliated",
            sa.Boolean(),
            nullable=False,
            comment="part of the archive's own organisation; false for external facilities",
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column(
            "deleted_at",
            sa.DateTime(timezone=True),
            nullable=True,
            comment="set when deleted; its tokens stop working",
        ),
        sa.Column("deleted_by", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("organisation_key", name=op.f("pk_organisation")),
    )
    op.create_index(
        "uq_organisation_name_active",
        "organisation",
        ["name"],
        unique=True,
        sqlite_where=sa.text("deleted_at IS NULL"),
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_table(
        "patient_authorization",
        sa.Column("authorization_key", KEY, autoincrement=True, nullable=False),
        sa.Column("authorization_id", sa.String(length=36), nullable=False, comment="public id, a UUID"),
        sa.Column("patient_id", sa.Text(), nullable=False, comment="(0010,0020) LO"),
        sa.Column(
            "issuer_of_patient_id", sa.Text(), nullable=False, comment="(0010,0021) LO, empty when none"
        ),
        sa.Column("coverage", sa.String(length=16), nullable=False, comment="all, studies or date_range"),
        sa.Column(
            "study_date_from",
            sa.String(length=8),
            nullable=True,
            comment="first covered StudyDate, YYYYMMDD, for date_range",
        ),
        sa.Column(
            "study_date_to",
            sa.String(length=8),
            nullable=True,
            comment="last covered StudyDate, YYYYMMDD, for date_range",
        ),
        sa.Column(
            "any_external", sa.Boolean(), nullable=False, comment="every external organisation may receive it"
        ),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("reference", sa.Text(), nullable=False, comment="where the signed authorization is kept"),
        sa.Column("recorded_by", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False, comment="exclusive"),
        sa.Column(
            "time_zone",
            sa.Text(),
            nullable=False,
            comment="IANA zone in which dates of this authorization and its studies are local days",
        ),
        sa.Column("end_chosen_by_patient", sa.Boolean(), nullable=False),
        sa.Column(
            "meets_twelve_months",
            sa.Boolean(),
            nullable=False,
            comment="ends_at reaches twelve months after every covered study and after starts_at",
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.Text(), nullable=True),
        sa.Column("revocation_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("authorization_key", name=op.f("pk_patient_authorization")),
        sa.UniqueConstraint("authorization_id", name=op.f("uq_patient_authorization_authorization_id")),
    )
    op.create_index(
        op.f("ix_patient_authorization_patient_id_issuer_of_patient_id"),
        "patient_authorization",
        ["patient_id", "issuer_of_patient_id"],
        unique=False,
    )
    op.create_table(
        "api_token",
        sa.Column("token_key", KEY, autoincrement=True, nullable=False),
        sa.Column("token_id", sa.String(length=32), nullable=False, comment="public name of the token"),
        sa.Column("organisation_key", KEY, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False, comment="SHA-256 of the token, hex"),
        sa.Column("scopes", sa.Text(), nullable=False, comment="space-separated scope names"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["organisation_key"],
            ["organisation.organisation_key"],
            name=op.f("fk_api_token_organisation_key_organisation"),
        ),
        sa.PrimaryKeyConstraint("token_key", name=op.f("pk_api_token")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_token_token_hash")),
        sa.UniqueConstraint("token_id", name=op.f("uq_api_token_token_id")),
    )
    op.create_index(op.f("ix_api_token_organisation_key"), "api_token", ["organisation_key"], unique=False)
    op.create_table(
        "authorization_recipient",
        sa.Column("authorization_key", KEY, nullable=False),
        sa.Column("organisation_key", KEY, nullable=False),
        sa.ForeignKeyConstraint(
            ["authorization_key"],
            ["patient_authorization.authorization_key"],
            name=op.f("fk_authorization_recipient_authorization_key_patient_authorization"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organisation_key"],
            ["organisation.organisation_key"],
            name=op.f("fk_authorization_recipient_organisation_key_organisation"),
        ),
        sa.PrimaryKeyConstraint(
            "authorization_key", "organisation_key", name=op.f("pk_authorization_recipient")
        ),
    )
    op.create_index(
        op.f("ix_authorization_recipient_organisation_key"),
        "authorization_recipient",
        ["organisation_key"],
        unique=False,
    )
    op.create_table(
        "authorization_study",
        sa.Column("authorization_key", KEY, nullable=False),
        sa.Column("study_instance_uid", sa.String(length=64), nullable=False, comment="(0020,000D) UI"),
        sa.ForeignKeyConstraint(
            ["authorization_key"],
            ["patient_authorization.authorization_key"],
            name=op.f("fk_authorization_study_authorization_key_patient_authorization"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "authorization_key", "study_instance_uid", name=op.f("pk_authorization_study")
        ),
    )
    op.create_table(
        "emergency_access",
        sa.Column("access_key", KEY, autoincrement=True, nullable=False),
        sa.Column("access_id", sa.String(length=36), nullable=False, comment="public id, a UUID"),
        sa.Column("organisation_key", KEY, nullable=False),
        sa.Column("subject", sa.Text(), nullable=False, comment="the user or token that opened it"),
        sa.Column("patient_id", sa.Text(), nullable=False, comment="(0010,0020) LO"),
        sa.Column(
            "issuer_of_patient_id", sa.Text(), nullable=False, comment="(0010,0021) LO, empty when none"
        ),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["organisation_key"],
            ["organisation.organisation_key"],
            name=op.f("fk_emergency_access_organisation_key_organisation"),
        ),
        sa.PrimaryKeyConstraint("access_key", name=op.f("pk_emergency_access")),
        sa.UniqueConstraint("access_id", name=op.f("uq_emergency_access_access_id")),
    )
    op.create_index(
        op.f("ix_emergency_access_organisation_key_subject"),
        "emergency_access",
        ["organisation_key", "subject"],
        unique=False,
    )
    op.create_index(
        op.f("ix_emergency_access_patient_id_issuer_of_patient_id"),
        "emergency_access",
        ["patient_id", "issuer_of_patient_id"],
        unique=False,
    )
    op.create_table(
        "quarantine_instance",
        sa.Column("quarantine_key", KEY, autoincrement=True, nullable=False),
        sa.Column("quarantine_id", sa.String(length=36), nullable=False, comment="public id, a UUID"),
        sa.Column("organisation_key", KEY, nullable=False),
        sa.Column("submitted_by", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=False, comment="(0008,0018) UI"),
        sa.Column("sop_class_uid", sa.String(length=64), nullable=False, comment="(0008,0016) UI"),
        sa.Column("study_instance_uid", sa.String(length=64), nullable=False, comment="(0020,000D) UI"),
        sa.Column("series_instance_uid", sa.String(length=64), nullable=False, comment="(0020,000E) UI"),
        sa.Column("patient_id", sa.Text(), nullable=True, comment="(0010,0020) LO"),
        sa.Column("issuer_of_patient_id", sa.Text(), nullable=True, comment="(0010,0021) LO"),
        sa.Column("patient_name", sa.Text(), nullable=True, comment="(0010,0010) PN, as received"),
        sa.Column("study_date", sa.String(length=8), nullable=True, comment="(0008,0020) DA, YYYYMMDD"),
        sa.Column("modality", sa.Text(), nullable=True, comment="(0008,0060) CS"),
        sa.Column(
            "transfer_syntax_uid",
            sa.String(length=64),
            nullable=False,
            comment="(0002,0010) UI of the stored object",
        ),
        sa.Column(
            "object_key", sa.Text(), nullable=False, comment="key of the Part 10 file in the object store"
        ),
        sa.Column("object_size", sa.BigInteger(), nullable=False),
        sa.Column(
            "content_digest",
            sa.String(length=64),
            nullable=False,
            comment="SHA-256 of the stored object, hex",
        ),
        sa.Column("status", sa.String(length=16), nullable=False, comment="held, accepted or rejected"),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.Text(), nullable=True),
        sa.Column("decision_note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["organisation_key"],
            ["organisation.organisation_key"],
            name=op.f("fk_quarantine_instance_organisation_key_organisation"),
        ),
        sa.PrimaryKeyConstraint("quarantine_key", name=op.f("pk_quarantine_instance")),
        sa.UniqueConstraint("quarantine_id", name=op.f("uq_quarantine_instance_quarantine_id")),
    )
    op.create_index(
        op.f("ix_quarantine_instance_object_key"), "quarantine_instance", ["object_key"], unique=False
    )
    op.create_index(
        op.f("ix_quarantine_instance_status_received_at"),
        "quarantine_instance",
        ["status", "received_at"],
        unique=False,
    )
    op.create_table(
        "emergency_access_use",
        sa.Column("use_key", KEY, autoincrement=True, nullable=False),
        sa.Column("access_key", KEY, nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column(
            "path", sa.Text(), nullable=False, comment="request path, kept for the audit, never logged"
        ),
        sa.ForeignKeyConstraint(
            ["access_key"],
            ["emergency_access.access_key"],
            name=op.f("fk_emergency_access_use_access_key_emergency_access"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("use_key", name=op.f("pk_emergency_access_use")),
    )
    op.create_index(
        op.f("ix_emergency_access_use_access_key"), "emergency_access_use", ["access_key"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_emergency_access_use_access_key"), table_name="emergency_access_use")
    op.drop_table("emergency_access_use")
    op.drop_index(op.f("ix_quarantine_instance_status_received_at"), table_name="quarantine_instance")
    op.drop_index(op.f("ix_quarantine_instance_object_key"), table_name="quarantine_instance")
    op.drop_table("quarantine_instance")
    op.drop_index(op.f("ix_emergency_access_patient_id_issuer_of_patient_id"), table_name="emergency_access")
    op.drop_index(op.f("ix_emergency_access_organisation_key_subject"), table_name="emergency_access")
    op.drop_table("emergency_access")
    op.drop_table("authorization_study")
    op.drop_index(op.f("ix_authorization_recipient_organisation_key"), table_name="authorization_recipient")
    op.drop_table("authorization_recipient")
    op.drop_index(op.f("ix_api_token_organisation_key"), table_name="api_token")
    op.drop_table("api_token")
    op.drop_index(
        op.f("ix_patient_authorization_patient_id_issuer_of_patient_id"), table_name="patient_authorization"
    )
    op.drop_table("patient_authorization")
    op.drop_index("uq_organisation_name_active", table_name="organisation")
    op.drop_table("organisation")
