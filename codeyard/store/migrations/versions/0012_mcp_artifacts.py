"""Run lineage for delegated runs, and artifacts (issue 22).

``runs.delegation`` records how an agent started a sub-run through Codeyard's MCP server:
its depth below the first human-started run and the budget slice it was given, so limits and
the lineage are checked against data rather than recomputed from memory. ``artifacts`` lists
files a run produced or registered (path inside the worktree, content type, size, digest).
``project_docs`` holds each project's managed documents (generated blocks between markers,
human text around them); ``changelog_entries`` one entry per landed run.

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("delegation", sa.JSON(), nullable=True))
    op.create_index("ix_runs_parent_run_id", "runs", ["parent_run_id"])
    op.create_table(
        "artifacts",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("run_id", sa.String(40), nullable=False),
        sa.Column("repo_id", sa.String(40), nullable=True),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("name", sa.String(250), nullable=False),
        sa.Column("content_type", sa.String(200), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_index("ix_artifacts_run_id", "artifacts", ["run_id"])
    op.create_table(
        "project_docs",
        sa.Column("project_id", sa.String(40), primary_key=True),
        sa.Column("slug", sa.String(100), primary_key=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("generated_at", sa.String(32), nullable=True),
        sa.Column("updated_at", sa.String(32), nullable=False),
        sa.Column("updated_by", sa.String(40), nullable=True),
    )
    op.create_table(
        "changelog_entries",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("project_id", sa.String(40), nullable=False),
        sa.Column("run_id", sa.String(40), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_index("ix_changelog_project", "changelog_entries", ["project_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_changelog_project", table_name="changelog_entries")
    op.drop_table("changelog_entries")
    op.drop_table("project_docs")
    op.drop_index("ix_artifacts_run_id", table_name="artifacts")
    op.drop_table("artifacts")
    op.drop_index("ix_runs_parent_run_id", table_name="runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("delegation")
