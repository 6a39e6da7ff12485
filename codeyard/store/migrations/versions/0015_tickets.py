"""Tickets, their comments, reviews and work queues (issue 19).

``tickets`` are numbered per project; ``blocked_by`` and ``run_ids`` are JSON lists of ids (a
ticket has few of each, and they are read with the ticket). Search is the database's own
full-text index: an FTS5 table kept in step by triggers on SQLite; on PostgreSQL a stored
generated ``search`` column (weighted ``tsvector``: title A, body B) with a GIN index.
``reviews`` belong to a run and, when the run works a ticket, to the ticket too.

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

#: The PostgreSQL search document; ``codeyard/tickets/store.py`` uses the same text.
PG_DOCUMENT = (
    "setweight(to_tsvector('english', coalesce(title, '')), 'A') || "
    "setweight(to_tsvector('english', coalesce(body, '')), 'B')"
)


def upgrade() -> None:
    op.create_table(
        "tickets",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("project_id", sa.String(40), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("priority", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("parent", sa.Integer(), nullable=True),
        sa.Column("blocked_by", sa.JSON(), nullable=False),
        sa.Column("assignee_user_id", sa.String(40), nullable=True),
        sa.Column("assignee_agent_id", sa.String(40), nullable=True),
        sa.Column("run_ids", sa.JSON(), nullable=False),
        sa.Column("current_run_id", sa.String(40), nullable=True),
        sa.Column("created_by", sa.String(40), nullable=True),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
        sa.UniqueConstraint("project_id", "number", name="uq_tickets_project_number"),
    )
    op.create_index("ix_tickets_project_status", "tickets", ["project_id", "status", "number"])
    op.create_index("ix_tickets_current_run", "tickets", ["current_run_id"])
    op.create_table(
        "ticket_comments",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("ticket_id", sa.String(40), nullable=False),
        sa.Column("author_id", sa.String(40), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("mentions", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_index("ix_ticket_comments_ticket", "ticket_comments", ["ticket_id", "created_at"])
    op.create_table(
        "reviews",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("run_id", sa.String(40), nullable=False),
        sa.Column("ticket_id", sa.String(40), nullable=True),
        sa.Column("verdict", sa.String(20), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("comments", sa.JSON(), nullable=False),
        sa.Column("author_id", sa.String(40), nullable=True),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_index("ix_reviews_run", "reviews", ["run_id", "created_at"])
    op.create_index("ix_reviews_ticket", "reviews", ["ticket_id", "created_at"])
    op.create_table(
        "work_queues",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("project_id", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("tickets", sa.JSON(), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("max_parallel", sa.Integer(), nullable=False),
        sa.Column("land", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("paused_reason", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(40), nullable=True),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
    )
    op.create_index("ix_work_queues_project", "work_queues", ["project_id", "created_at"])
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE tickets_fts USING fts5("
            "title, body, content='tickets', content_rowid='rowid', tokenize='porter unicode61')"
        )
        op.execute(
            "CREATE TRIGGER tickets_fts_ai AFTER INSERT ON tickets BEGIN "
            "INSERT INTO tickets_fts(rowid, title, body) VALUES (new.rowid, new.title, new.body); "
            "END"
        )
        op.execute(
            "CREATE TRIGGER tickets_fts_ad AFTER DELETE ON tickets BEGIN "
            "INSERT INTO tickets_fts(tickets_fts, rowid, title, body) "
            "VALUES ('delete', old.rowid, old.title, old.body); END"
        )
        op.execute(
            "CREATE TRIGGER tickets_fts_au AFTER UPDATE OF title, body ON tickets BEGIN "
            "INSERT INTO tickets_fts(tickets_fts, rowid, title, body) "
            "VALUES ('delete', old.rowid, old.title, old.body); "
            "INSERT INTO tickets_fts(rowid, title, body) VALUES (new.rowid, new.title, new.body); "
            "END"
        )
    else:
        # A stored generated column: ranking reads it instead of parsing every matching
        # ticket's text again (which made common words take seconds at 100,000 tickets).
        op.execute(
            f"ALTER TABLE tickets ADD COLUMN search tsvector GENERATED ALWAYS AS ({PG_DOCUMENT}) "
            "STORED"
        )
        op.execute("CREATE INDEX ix_tickets_search ON tickets USING GIN (search)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("tickets_fts_ai", "tickets_fts_ad", "tickets_fts_au"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS tickets_fts")
    else:
        op.execute("DROP INDEX IF EXISTS ix_tickets_search")
    op.drop_index("ix_work_queues_project", table_name="work_queues")
    op.drop_table("work_queues")
    op.drop_index("ix_reviews_ticket", table_name="reviews")
    op.drop_index("ix_reviews_run", table_name="reviews")
    op.drop_table("reviews")
    op.drop_index("ix_ticket_comments_ticket", table_name="ticket_comments")
    op.drop_table("ticket_comments")
    op.drop_index("ix_tickets_current_run", table_name="tickets")
    op.drop_index("ix_tickets_project_status", table_name="tickets")
    op.drop_table("tickets")
