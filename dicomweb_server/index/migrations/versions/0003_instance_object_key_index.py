"""Index instance.object_key, so the sweep finds which stored objects the index points to.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_instance_object_key"), "instance", ["object_key"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_instance_object_key"), table_name="instance")
