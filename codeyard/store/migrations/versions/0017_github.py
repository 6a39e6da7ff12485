"""Local checks, the GitHub webhook inbox and the feedback ledger (issue 21).

``repo_checks`` holds each repository's named check commands and what they gate (required to
land, run after every turn, hand failures back to the agent). ``github_deliveries`` is the
webhook inbox: one row per ``X-GitHub-Delivery`` (unique, so a redelivered duplicate is acked
and ignored), processed asynchronously and marked when done; ``github_hooks`` the hooks
deliveries came from, which the sweeper asks for failed deliveries to redeliver.
``feedback_marks`` remembers each failure already handed back to an agent (one row per key such
as run + tree + failed checks, or PR + head SHA + suite), so a failure is fed back once and the
attempts per run or PR can be capped.

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "repo_checks",
        sa.Column("repo_id", sa.String(40), primary_key=True),
        sa.Column("checks", sa.JSON(), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("after_turn", sa.Boolean(), nullable=False),
        sa.Column("fix_loop", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "github_deliveries",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("delivery_id", sa.String(80), nullable=False, unique=True),
        sa.Column("event", sa.String(60), nullable=False),
        sa.Column("action", sa.String(60), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("received_at", sa.String(32), nullable=False),
        sa.Column("processed_at", sa.String(32), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("hook_id", sa.String(40), nullable=True),
        sa.Column("repo", sa.String(200), nullable=True),
    )
    op.create_table(
        "github_hooks",
        sa.Column("hook_id", sa.String(40), primary_key=True),
        sa.Column("target", sa.String(40), nullable=False),
        sa.Column("repo", sa.String(200), nullable=True),
        sa.Column("swept_at", sa.String(32), nullable=True),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_index("ix_github_deliveries_processed_at", "github_deliveries", ["processed_at"])
    op.create_table(
        "feedback_marks",
        sa.Column("key", sa.String(300), primary_key=True),
        sa.Column("scope", sa.String(300), nullable=False),
        sa.Column("run_id", sa.String(40), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("counted", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_index("ix_feedback_marks_scope", "feedback_marks", ["scope"])


def downgrade() -> None:
    op.drop_index("ix_feedback_marks_scope", "feedback_marks")
    op.drop_table("feedback_marks")
    op.drop_index("ix_github_deliveries_processed_at", "github_deliveries")
    op.drop_table("github_hooks")
    op.drop_table("github_deliveries")
    op.drop_table("repo_checks")
