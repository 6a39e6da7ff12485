"""Scale-out, part 1 (issue 16): run attempts (fencing), the workers registry, event ids from a
sequence on PostgreSQL.

``runs.attempt`` counts the times an executor took the run; every write made for an attempt
names it and is refused once the run has moved on to a newer one. ``workers`` lists the hosts
that execute runs, with what they can serve and when they last said so. On PostgreSQL, event
ids come from ``events_id_seq`` so several writer processes never hand out the same id.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("attempt", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "workers",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("capabilities", sa.JSON(), nullable=False),
        sa.Column("slots", sa.Integer(), nullable=False),
        sa.Column("free_slots", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.String(32), nullable=False),
        sa.Column("heartbeat_at", sa.String(32), nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE SEQUENCE IF NOT EXISTS events_id_seq AS BIGINT")
        op.execute(
            "SELECT setval('events_id_seq', COALESCE((SELECT MAX(id) FROM events), 0) + 1, false)"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP SEQUENCE IF EXISTS events_id_seq")
    op.drop_table("workers")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("attempt")
