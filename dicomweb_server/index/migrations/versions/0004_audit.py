"""Add the audit trail (entries, their studies, the chain head) and patients' refusals to share.

The entry tables get triggers that reject UPDATE and DELETE, so the server and every command
can only append to them. A database administrator can still drop the triggers; the hash chain
is what makes such changes visible to ``dicomweb-server audit verify``.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
GENESIS_HASH = "0" * 64
APPEND_ONLY_TABLES = ("audit_event", "audit_event_study")
APPEND_ONLY_MESSAGE = "audit entries are append-only"


def upgrade() -> None:
    _create_audit_event()
    _create_audit_event_study()
    op.create_table(
        "audit_chain",
        sa.Column("chain_key", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column(
            "sequence", sa.BigInteger(), nullable=False, comment="sequence of the last entry, 0 when none"
        ),
        sa.Column("hash", sa.String(length=64), nullable=False, comment="hash of the last entry"),
        sa.PrimaryKeyConstraint("chain_key", name=op.f("pk_audit_chain")),
    )
    op.execute(
        sa.text("INSERT INTO audit_chain (chain_key, sequence, hash) VALUES (1, 0, :genesis)").bindparams(
            genesis=GENESIS_HASH
        )
    )
    _create_patient_refusal()
    for table in APPEND_ONLY_TABLES:
        _forbid_changes(table)


def _create_audit_event() -> None:
    op.create_table(
        "audit_event",
        sa.Column("sequence", KEY, autoincrement=False, nullable=False, comment="position in the chain"),
        sa.Column("event_id", sa.String(length=36), nullable=False, comment="public id, a UUID"),
        sa.Column(
            "request_id",
            sa.String(length=36),
            nullable=True,
            comment="shared by the entries of one HTTP request",
        ),
        sa.Column("event_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_type", sa.String(length=40), nullable=False),
        sa.Column(
            "action", sa.String(length=64), nullable=False, comment="the operation, such as RetrieveStudy"
        ),
        sa.Column(
            "outcome", sa.SmallInteger(), nullable=False, comment="EventOutcomeIndicator: 0, 4, 8 or 12"
        ),
        sa.Column(
            "subject", sa.Text(), nullable=False, comment="token id, OIDC subject, CLI user or the archive"
        ),
        sa.Column("organisation", sa.Text(), nullable=True),
        sa.Column(
            "external",
            sa.Boolean(),
            nullable=False,
            comment="the requester's organisation is not affiliated",
        ),
        sa.Column(
            "content", sa.Text(), nullable=False, comment="the entry as canonical JSON, covered by the hash"
        ),
        sa.Column(
            "previous_hash", sa.String(length=64), nullable=False, comment="hash of the entry before, hex"
        ),
        sa.Column(
            "hash",
            sa.String(length=64),
            nullable=False,
            comment="SHA-256 of previous_hash, sequence and content, hex",
        ),
        sa.PrimaryKeyConstraint("sequence", name=op.f("pk_audit_event")),
        sa.UniqueConstraint("event_id", name=op.f("uq_audit_event_event_id")),
    )
    op.create_index(op.f("ix_audit_event_event_time"), "audit_event", ["event_time"], unique=False)
    op.create_index(
        op.f("ix_audit_event_event_type_event_time"),
        "audit_event",
        ["event_type", "event_time"],
        unique=False,
    )
    op.create_index(op.f("ix_audit_event_request_id"), "audit_event", ["request_id"], unique=False)
    op.create_index(
        op.f("ix_audit_event_subject_event_time"), "audit_event", ["subject", "event_time"], unique=False
    )


def _create_audit_event_study() -> None:
    op.create_table(
        "audit_event_study",
        sa.Column("sequence", KEY, autoincrement=False, nullable=False),
        sa.Column(
            "study_instance_uid",
            sa.String(length=64),
            nullable=False,
            comment="(0020,000D) UI, empty for an entry that names the patient alone",
        ),
        sa.Column("patient_id", sa.Text(), nullable=True, comment="(0010,0020) LO"),
        sa.Column(
            "issuer_of_patient_id", sa.Text(), nullable=False, comment="(0010,0021) LO, empty when none"
        ),
        sa.PrimaryKeyConstraint("sequence", "study_instance_uid", name=op.f("pk_audit_event_study")),
    )
    op.create_index(
        op.f("ix_audit_event_study_patient_id_issuer_of_patient_id"),
        "audit_event_study",
        ["patient_id", "issuer_of_patient_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_audit_event_study_study_instance_uid"),
        "audit_event_study",
        ["study_instance_uid"],
        unique=False,
    )


def _create_patient_refusal() -> None:
    op.create_table(
        "patient_refusal",
        sa.Column("refusal_key", KEY, autoincrement=True, nullable=False),
        sa.Column("refusal_id", sa.String(length=36), nullable=False, comment="public id, a UUID"),
        sa.Column("patient_id", sa.Text(), nullable=False, comment="(0010,0020) LO"),
        sa.Column(
            "issuer_of_patient_id", sa.Text(), nullable=False, comment="(0010,0021) LO, empty when none"
        ),
        sa.Column(
            "declined_at", sa.DateTime(timezone=True), nullable=False, comment="when the patient declined"
        ),
        sa.Column(
            "reference",
            sa.Text(),
            nullable=False,
            comment="where the signed refusal or the note of it is kept",
        ),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("recorded_by", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("refusal_key", name=op.f("pk_patient_refusal")),
        sa.UniqueConstraint("refusal_id", name=op.f("uq_patient_refusal_refusal_id")),
    )
    op.create_index(
        op.f("ix_patient_refusal_patient_id_issuer_of_patient_id"),
        "patient_refusal",
        ["patient_id", "issuer_of_patient_id"],
        unique=False,
    )


def _forbid_changes(table: str) -> None:
    """Add triggers that make UPDATE and DELETE on ``table`` fail."""
    if op.get_bind().dialect.name == "sqlite":
        for operation in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
            )
        return
    op.execute(
        f"CREATE FUNCTION {table}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN RAISE EXCEPTION '{APPEND_ONLY_MESSAGE}'; END $$"
    )
    op.execute(
        f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
        f"FOR EACH ROW EXECUTE FUNCTION {table}_append_only()"
    )


def _allow_changes(table: str) -> None:
    if op.get_bind().dialect.name == "sqlite":
        for operation in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{operation}")
        return
    op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
    op.execute(f"DROP FUNCTION IF EXISTS {table}_append_only()")


def downgrade() -> None:
    for table in APPEND_ONLY_TABLES:
        _allow_changes(table)
    op.drop_index(op.f("ix_patient_refusal_patient_id_issuer_of_patient_id"), table_name="patient_refusal")
    op.drop_table("patient_refusal")
    op.drop_table("audit_chain")
    op.drop_index(op.f("ix_audit_event_study_study_instance_uid"), table_name="audit_event_study")
    op.drop_index(
        op.f("ix_audit_event_study_patient_id_issuer_of_patient_id"), table_name="audit_event_study"
    )
    op.drop_table("audit_event_study")
    op.drop_index(op.f("ix_audit_event_subject_event_time"), table_name="audit_event")
    op.drop_index(op.f("ix_audit_event_request_id"), table_name="audit_event")
    op.drop_index(op.f("ix_audit_event_event_type_event_time"), table_name="audit_event")
    op.drop_index(op.f("ix_audit_event_event_time"), table_name="audit_event")
    op.drop_table("audit_event")
