"""Run process groups, approval binding and auto-resume bookkeeping (issue 12).

``run_processes`` holds every process group a run started (pgid + start time + boot id), so a
restart can stop what a killed server left running before it marks runs interrupted.
``runs.workspace_intent`` records the branch and worktree paths before they are created, so a
crash while preparing leaves nothing that delete, discard or a second prepare cannot find.
``runs.crash_resumes`` bounds ``auto_resume``; ``runs.resume_at_start`` marks runs the server
(not an operator) interrupted. ``approvals.fingerprint`` (tool + normalized input) binds a
resumed agent's identical call to its existing approval; ``used_at``/``used_by`` mark an answer
delivered (and to which call: one whose call never finished is handed out again after a crash).

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_processes",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(40), nullable=False),
        sa.Column("pgid", sa.Integer(), nullable=False),
        sa.Column("start_ticks", sa.BigInteger(), nullable=False),
        sa.Column("boot_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_index("ix_run_processes_run_id", "run_processes", ["run_id"])
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("workspace_intent", sa.JSON(), nullable=True))
        batch.add_column(
            sa.Column("crash_resumes", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("resume_at_start", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("approvals") as batch:
        batch.add_column(sa.Column("fingerprint", sa.String(64), nullable=True))
        batch.add_column(sa.Column("used_at", sa.String(32), nullable=True))
        batch.add_column(sa.Column("used_by", sa.String(200), nullable=True))
    op.create_index("ix_approvals_run_fingerprint", "approvals", ["run_id", "fingerprint"])


def downgrade() -> None:
    op.drop_index("ix_approvals_run_fingerprint", "approvals")
    with op.batch_alter_table("approvals") as batch:
        batch.drop_column("used_by")
        batch.drop_column("used_at")
        batch.drop_column("fingerprint")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("resume_at_start")
        batch.drop_column("crash_resumes")
        batch.drop_column("workspace_intent")
    op.drop_index("ix_run_processes_run_id", "run_processes")
    op.drop_table("run_processes")
