"""Analytics reads run minutes without parsing dates (issue 17): ``runs.run_seconds`` is
written with ``finished_at`` by the one status door (``store.runs.set_status``), so summing the
minutes of 10,000 runs is a sum, not 20,000 text-to-timestamp casts (PostgreSQL spent ~10 ms
on those per request). Old runs are backfilled here; ``runs.created_at`` gets the index the
analytics period filters (and the run list's newest-first order) use.

Revision ID: 0022
Revises: 0021
"""

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("run_seconds", sa.Float(), nullable=True))
        batch.create_index("ix_runs_created_at", ["created_at"])
    if op.get_bind().dialect.name == "postgresql":
        seconds = (
            "extract(epoch from (cast(finished_at as timestamp) - cast(started_at as timestamp)))"
        )
    else:
        seconds = "(julianday(finished_at) - julianday(started_at)) * 86400.0"
    op.execute(
        f"UPDATE runs SET run_seconds = {seconds} "
        "WHERE finished_at IS NOT NULL AND started_at IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_index("ix_runs_created_at")
        batch.drop_column("run_seconds")
