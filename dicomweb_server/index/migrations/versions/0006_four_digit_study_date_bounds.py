"""Write the StudyDate bounds of date-range authorizations with four-digit years.

Earlier versions formatted these bounds with ``strftime("%Y%m%d")``, which on glibc writes a
year below 1000 without leading zeros: 0999-12-31 became ``9991231``. StudyDate ranges are
compared as text, so such a bound covered far more studies than the patient authorized. The
month and day always take four characters, so left-padding the value to eight characters
with zeros restores the date that was given.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

BOUNDS = ("study_date_from", "study_date_to")


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    authorizations = sa.table("patient_authorization", *(sa.column(name, sa.String(8)) for name in BOUNDS))
    for name in BOUNDS:
        bound = authorizations.c[name]
        if postgresql:
            padded = sa.func.lpad(bound, 8, "0")
        else:
            padded = sa.func.substr(sa.literal("00000000") + bound, -8, 8)
        op.execute(
            authorizations.update()
            .where(bound.is_not(None), sa.func.length(bound) < 8)
            .values({name: padded})
        )


def downgrade() -> None:
    # The padded bounds are the dates that were given; nothing to undo.
    pass
