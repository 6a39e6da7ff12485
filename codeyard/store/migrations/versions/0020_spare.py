"""Workspaces (issue 22, CodePiper's): a named scope that groups projects and carries defaults
for the runs started in it; ``runs`` gain ``workspace_id`` (the workspace a run was started in,
None for runs outside one).

On PostgreSQL only, the code index's tables (``codeindex.pg``): files with their text and a
``tsvector`` under a GIN index, and the commit each repository is indexed at. On SQLite the
index stays a file per repository (FTS5).

Revision ID: 0020
Revises: 0019
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workspaces",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("project_ids", sa.JSON(), nullable=False),
        sa.Column("defaults", sa.JSON(), nullable=False),
        sa.Column("owner_id", sa.String(40), nullable=True),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
    )
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("workspace_id", sa.String(40), nullable=True))
        batch.create_index("ix_runs_workspace_id", ["workspace_id"])
    if op.get_bind().dialect.name == "postgresql":
        op.create_table(
            "code_index_files",
            sa.Column("repo_id", sa.String(40), primary_key=True),
            sa.Column("path", sa.Text(), primary_key=True),
            sa.Column("blob", sa.String(64), nullable=False),
            sa.Column("size", sa.BigInteger(), nullable=False),
            sa.Column("lines", sa.Integer(), nullable=False),
            sa.Column("body", sa.Text(), nullable=True),
            sa.Column("tsv", postgresql.TSVECTOR(), nullable=True),
            # The file's embedding (float32, ``codeindex.embeddings``) when they are on.
            sa.Column("vec", sa.LargeBinary(), nullable=True),
        )
        op.create_index(
            "ix_code_index_files_tsv", "code_index_files", ["tsv"], postgresql_using="gin"
        )
        op.create_table(
            "code_index_meta",
            sa.Column("repo_id", sa.String(40), primary_key=True),
            sa.Column("commit", sa.String(64), nullable=False),
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_table("code_index_meta")
        op.drop_table("code_index_files")
    with op.batch_alter_table("runs") as batch:
        batch.drop_index("ix_runs_workspace_id")
        batch.drop_column("workspace_id")
    op.drop_table("workspaces")
