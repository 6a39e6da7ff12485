"""Shared rate limits (issue 16): on PostgreSQL only, ``rate_hits`` holds the recent hits of
each limited key, so every API server of one database counts the same window
(``codeyard.cluster.ratelimit``). SQLite has one server process: its limits stay in memory.

Revision ID: 0021
Revises: 0020
"""

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.create_table(
        "rate_hits",
        sa.Column("id", sa.BigInteger(), sa.Identity(), primary_key=True),
        sa.Column("key", sa.String(300), nullable=False),
        #: Seconds since the epoch on the database's clock (one clock for every server).
        sa.Column("at", sa.Float(), nullable=False),
    )
    op.create_index("ix_rate_hits_key_at", "rate_hits", ["key", "at"])


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index("ix_rate_hits_key_at", table_name="rate_hits")
    op.drop_table("rate_hits")
