"""Index study searches: the listing order and prefix matching of every PatientName group.

Study results are ordered newest first with ``coalesce(study_date, '') DESC, coalesce(study_time,
'') DESC, study_key DESC``. PostgreSQL cannot read that order from the ascending index on
(study_date, study_time, study_key), so a page of studies sorted every match first. The new
expression index has that order on both databases.

A PatientName of one component group is matched against the alphabetic, ideographic and
phonetic groups alike, and only the alphabetic one had an index, so a wildcard search read the
whole study table. On PostgreSQL a LIKE prefix uses a b-tree index only under the C collation or
with ``text_pattern_ops``, so the three group indexes use that operator class there. SQLite
runs with ``case_sensitive_like`` on, so its plain index serves the prefix.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

NAME_GROUPS = ("patient_name_alphabetic", "patient_name_ideographic", "patient_name_phonetic")
LISTING_ORDER = (
    sa.text("coalesce(study_date, '') DESC"),
    sa.text("coalesce(study_time, '') DESC"),
    sa.text("study_key DESC"),
)


def upgrade() -> None:
    op.drop_index(op.f("ix_study_patient_name_alphabetic"), table_name="study")
    for column in NAME_GROUPS:
        op.create_index(
            op.f(f"ix_study_{column}"),
            "study",
            [column],
            unique=False,
            postgresql_ops={column: "text_pattern_ops"},
        )
    op.create_index("ix_study_newest_first", "study", list(LISTING_ORDER), unique=False)
    if op.get_bind().dialect.name == "postgresql":
        # The planner has no statistics on an expression index's values until the table is analyzed.
        op.execute("ANALYZE study")


def downgrade() -> None:
    op.drop_index("ix_study_newest_first", table_name="study")
    for column in NAME_GROUPS:
        op.drop_index(op.f(f"ix_study_{column}"), table_name="study")
    op.create_index(
        op.f("ix_study_patient_name_alphabetic"), "study", ["patient_name_alphabetic"], unique=False
    )
