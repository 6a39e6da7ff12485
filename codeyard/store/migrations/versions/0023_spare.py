"""Scale-out state (issue 16).

``auth_failures`` (PostgreSQL only): each address's and username's recent failed sign-ins, so
every API server of one database counts the same window (``codeyard.cluster.failures``);
SQLite has one server process and keeps its counts in memory.

``cluster_claims`` (PostgreSQL only): which reactions to an event one server took, so the
after-turn checks and pull-request pushes run once per cluster (``codeyard.cluster.claims``).

``run_sessions``: a run's agent session files as of its last checkpoint, so a worker that takes
the run over after its host was lost resumes the agent's own session
(``codeyard.temporal.sessions``).

Revision ID: 0023
Revises: 0022
"""

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_sessions",
        sa.Column("run_id", sa.String(40), primary_key=True),
        sa.Column("provider", sa.String(40), nullable=False),
        sa.Column("session_id", sa.String(200), nullable=False),
        sa.Column("turn", sa.Integer(), nullable=False),
        sa.Column("archive", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    op.create_table(
        "auth_failures",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("key", sa.String(300), nullable=False),
        #: Seconds since the epoch on the database's clock (one clock for every server).
        sa.Column("at", sa.Float(), nullable=False),
    )
    op.create_index("ix_auth_failures_key_at", "auth_failures", ["key", "at"])
    op.create_table(
        "cluster_claims",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("at", sa.Float(), nullable=False),
    )
    op.create_index("ix_cluster_claims_at", "cluster_claims", ["at"])


def downgrade() -> None:
    op.drop_table("run_sessions")
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_cluster_claims_at", table_name="cluster_claims")
    op.drop_table("cluster_claims")
    op.drop_index("ix_auth_failures_key_at", table_name="auth_failures")
    op.drop_table("auth_failures")
