"""Workflows (issue 20): definitions with their versions, executions, and each execution's log.

``workflow_versions`` keeps every saved definition, so an execution's ``workflow_version`` can
always be read back; the execution itself holds a snapshot of the resolved definition and its
inputs (``definition``, ``inputs``, ``definition_hash``), which is what a resume runs — never the
workflow's current text. ``workflow_events`` is the execution's append-only log (``workflow.*``
events, numbered per execution): step state is derived from it after a restart.

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workflows",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("origin", sa.Text(), nullable=True),
        sa.Column("owner_id", sa.String(40), nullable=True),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
    )
    op.create_index("ix_workflows_name", "workflows", ["name"])
    op.create_table(
        "workflow_versions",
        sa.Column("workflow_id", sa.String(40), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "workflow_executions",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("workflow_id", sa.String(40), nullable=False),
        sa.Column("workflow_version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("definition_hash", sa.String(64), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("target", sa.JSON(), nullable=False),
        sa.Column("budget_usd", sa.Float(), nullable=True),
        sa.Column("spent_usd", sa.Float(), nullable=False),
        sa.Column("outputs", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(40), nullable=True),
        sa.Column("principal", sa.JSON(), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
        sa.Column("finished_at", sa.String(32), nullable=True),
    )
    op.create_index(
        "ix_workflow_executions_workflow", "workflow_executions", ["workflow_id", "created_at"]
    )
    op.create_index("ix_workflow_executions_status", "workflow_executions", ["status"])
    op.create_table(
        "workflow_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("execution_id", sa.String(40), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(60), nullable=False),
        sa.Column("ts", sa.String(32), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
    )
    op.create_index(
        "ix_workflow_events_execution_seq", "workflow_events", ["execution_id", "seq"], unique=True
    )


def downgrade() -> None:
    op.drop_index("ix_workflow_events_execution_seq", table_name="workflow_events")
    op.drop_table("workflow_events")
    op.drop_index("ix_workflow_executions_status", table_name="workflow_executions")
    op.drop_index("ix_workflow_executions_workflow", table_name="workflow_executions")
    op.drop_table("workflow_executions")
    op.drop_table("workflow_versions")
    op.drop_index("ix_workflows_name", table_name="workflows")
    op.drop_table("workflows")
