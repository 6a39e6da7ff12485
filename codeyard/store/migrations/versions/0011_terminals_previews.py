"""Terminal scrollback and port leases (issue 18).

``terminals``: one row per terminal (its scrollback tail lives in a file under the data dir, the
row keeps where the log ends and why it closed). ``port_leases``: the block of ports each run
owns. ``utility_calls``: tokens and cost of every utility-model call.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "terminals",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=True),
        sa.Column("created_by", sa.String(length=40), nullable=True),
        sa.Column("cwd", sa.Text(), nullable=False),
        sa.Column("command", sa.JSON(), nullable=False),
        sa.Column("cols", sa.Integer(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("end_offset", sa.BigInteger(), nullable=False),
        sa.Column("close_reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.Column("closed_at", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_terminals_run_id", "terminals", ["run_id"])
    op.create_table(
        "port_leases",
        sa.Column("run_id", sa.String(length=40), nullable=False),
        sa.Column("base_port", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("run_id"),
        sa.UniqueConstraint("base_port", name="uq_port_leases_base_port"),
    )
    op.create_table(
        "utility_calls",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("purpose", sa.String(length=60), nullable=False),
        sa.Column("run_id", sa.String(length=40), nullable=True),
        sa.Column("created_by", sa.String(length=40), nullable=True),
        sa.Column("backend", sa.String(length=20), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_utility_calls_created_at", "utility_calls", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_utility_calls_created_at", table_name="utility_calls")
    op.drop_table("utility_calls")
    op.drop_table("port_leases")
    op.drop_index("ix_terminals_run_id", table_name="terminals")
    op.drop_table("terminals")
