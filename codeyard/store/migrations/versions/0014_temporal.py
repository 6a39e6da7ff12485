"""The worker host holding a run's worktrees (issue 16, part 2: the Temporal executor).

``runs.worker_host`` is written by the worker that places or takes over a run; placement
counts a host's active runs from it, and the API shows where a run lives.

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("worker_host", sa.String(200), nullable=True))
    op.create_index("ix_runs_worker_host", "runs", ["worker_host", "status"])


def downgrade() -> None:
    op.drop_index("ix_runs_worker_host", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("worker_host")
