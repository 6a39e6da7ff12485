"""Owners for projects and env sets; token lineage; the settings audit log; sealed agent
profile env (issue 11).

Projects and env sets made before this revision have no owner (``owner_id`` NULL): only admins
may change them, as for any object whose owner is unknown. ``api_tokens.parent_id`` is the token
that created a token (NULL when a password session did), ``sessions.token_id`` the token a
``token-login`` session was opened with, so revoking a token ends what it begat.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("owner_id", sa.String(40)))
        batch.add_column(sa.Column("member_ids", sa.JSON()))
    with op.batch_alter_table("env_sets") as batch:
        batch.add_column(sa.Column("owner_id", sa.String(40)))
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("env_sealed", sa.Text()))
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("parent_id", sa.String(40)))
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("token_id", sa.String(40)))
    op.create_index("ix_api_tokens_parent_id", "api_tokens", ["parent_id"])
    op.create_index("ix_sessions_token_id", "sessions", ["token_id"])
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("object_id", sa.String(40), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_index("ix_sessions_token_id", "sessions")
    op.drop_index("ix_api_tokens_parent_id", "api_tokens")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("token_id")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("parent_id")
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("env_sealed")
    with op.batch_alter_table("env_sets") as batch:
        batch.drop_column("owner_id")
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("member_ids")
        batch.drop_column("owner_id")
