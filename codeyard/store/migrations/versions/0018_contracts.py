"""Plans that become tickets, and each user's git identity (issue 19).

``plans`` hold a goal, the utility model's proposal (a title, a summary and ``tickets``: a JSON
list of proposed tickets whose ``blocked_by`` name other proposals by ``ref``), what the
proposal cost, and once accepted the ticket number each ``ref`` became. ``discoveries`` are
read-only agent runs with the actions they proposed. ``work_queues`` gain a ``budget_usd``.
``users`` gain
``git_name``/``git_email``: the identity commits of that user's runs carry.

(The slot was first reserved for the contracts issue, which did not need a table.)

Revision ID: 0018
Revises: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "plans",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("project_id", sa.String(40), nullable=False),
        sa.Column("goal", sa.Text(), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("tickets", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("ticket_numbers", sa.JSON(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.Column("created_by", sa.String(40), nullable=True),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
    )
    op.create_index("ix_plans_project", "plans", ["project_id", "created_at"])
    op.create_table(
        "discoveries",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("project_id", sa.String(40), nullable=False),
        sa.Column("run_id", sa.String(40), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("actions", sa.JSON(), nullable=False),
        sa.Column("read_turn", sa.Integer(), nullable=False),
        sa.Column("actions_error", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(40), nullable=True),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
    )
    op.create_index("ix_discoveries_project", "discoveries", ["project_id", "created_at"])
    with op.batch_alter_table("work_queues") as batch:
        batch.add_column(sa.Column("budget_usd", sa.Float(), nullable=True))
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("git_name", sa.String(200), nullable=True))
        batch.add_column(sa.Column("git_email", sa.String(320), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("work_queues") as batch:
        batch.drop_column("budget_usd")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("git_email")
        batch.drop_column("git_name")
    op.drop_index("ix_discoveries_project", table_name="discoveries")
    op.drop_table("discoveries")
    op.drop_index("ix_plans_project", table_name="plans")
    op.drop_table("plans")
