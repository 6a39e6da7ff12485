"""Budgets: an index to sum usage by period, and per-run waivers of the daily/monthly caps.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_events_type_ts", "events", ["type", "ts"])
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("cap_waivers", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("cap_waivers")
    op.drop_index("ix_events_type_ts", "events")
