"""Usage rollups, notification outbox, push subscriptions and devices (issue 17).

``consumer_cursors`` records how far each event-log consumer has read; ``usage_hourly``,
``tool_hourly`` and ``run_usage`` are the analytics rollups (UTC hours) it maintains.
The notification tables: web push subscriptions, native devices, user channels (sealed
config), preferences, the per-run notify flag, the outbox (one row per event x target x user),
the delivery log, and single-use action tokens.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

DIMS = ("project_id", "repo_id", "provider", "model", "agent_id", "user_id")


def _dims() -> list[sa.Column]:  # type: ignore[type-arg]
    return [sa.Column(name, sa.String(200), nullable=False) for name in DIMS]


def _tokens() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column(name, sa.BigInteger(), nullable=False)
        for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
    ] + [
        sa.Column(name, sa.Float(), nullable=False)
        for name in ("cost_usd", "computed_cost_usd", "reported_cost_usd")
    ]


def _counts(*names: str) -> list[sa.Column]:  # type: ignore[type-arg]
    return [sa.Column(name, sa.Integer(), nullable=False) for name in names]


def upgrade() -> None:
    op.create_table(
        "consumer_cursors",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("last_event_id", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "usage_hourly",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("hour", sa.String(13), nullable=False),
        *_dims(),
        *_tokens(),
        *_counts(
            "usage_events",
            "unpriced_events",
            "reported_events",
            "user_messages",
            "agent_messages",
        ),
        sa.UniqueConstraint("hour", *DIMS, name="uq_usage_hourly_key"),
    )
    op.create_table(
        "tool_hourly",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("hour", sa.String(13), nullable=False),
        *_dims(),
        sa.Column("tool", sa.String(200), nullable=False),
        sa.Column("le_ms", sa.BigInteger(), nullable=False),
        *_counts("calls", "failures"),
        sa.UniqueConstraint("hour", *DIMS, "tool", "le_ms", name="uq_tool_hourly_key"),
    )
    op.create_table(
        "run_usage",
        sa.Column("run_id", sa.String(40), primary_key=True),
        sa.Column("model", sa.String(200), primary_key=True),
        *_tokens(),
        *_counts(
            "usage_events",
            "unpriced_events",
            "reported_events",
            "tool_calls",
            "tool_failures",
            "messages",
        ),
    )
    op.create_table(
        "push_subscriptions",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("endpoint", sa.Text(), nullable=False),
        sa.Column("endpoint_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("p256dh", sa.Text(), nullable=False),
        sa.Column("auth", sa.Text(), nullable=False),
        sa.Column("user_agent", sa.String(300)),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("last_success_at", sa.String(32)),
    )
    op.create_index("ix_push_subscriptions_user_id", "push_subscriptions", ["user_id"])
    op.create_table(
        "devices",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("platform", sa.String(10), nullable=False),
        sa.Column("token_sealed", sa.Text(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("name", sa.String(200)),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("last_success_at", sa.String(32)),
    )
    op.create_index("ix_devices_user_id", "devices", ["user_id"])
    op.create_table(
        "notification_channels",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("config_sealed", sa.Text(), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_index("ix_notification_channels_user_id", "notification_channels", ["user_id"])
    op.create_table(
        "notification_prefs",
        sa.Column("user_id", sa.String(40), primary_key=True),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("quiet_start", sa.String(5)),
        sa.Column("quiet_end", sa.String(5)),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "run_notify",
        sa.Column("run_id", sa.String(40), primary_key=True),
        sa.Column("notify", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "notification_outbox",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("run_id", sa.String(40), nullable=False),
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("target", sa.String(60), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("tag", sa.String(80), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.String(32), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("sent_at", sa.String(32)),
        sa.Column("last_error", sa.Text()),
        sa.UniqueConstraint("event_id", "target", "user_id", name="uq_outbox_event_target_user"),
    )
    op.create_index("ix_outbox_status_due", "notification_outbox", ["status", "next_attempt_at"])
    op.create_table(
        "notification_deliveries",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("outbox_id", sa.Integer()),
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("target", sa.String(60), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("status_code", sa.Integer()),
        sa.Column("error", sa.Text()),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
    )
    op.create_index("ix_deliveries_target", "notification_deliveries", ["target", "id"])
    op.create_table(
        "action_tokens",
        sa.Column("nonce", sa.String(40), primary_key=True),
        sa.Column("approval_id", sa.String(40), nullable=False),
        sa.Column("user_id", sa.String(40), nullable=False),
        sa.Column("expires_at", sa.String(32), nullable=False),
        sa.Column("used_at", sa.String(32)),
    )
    op.create_index("ix_action_tokens_approval_id", "action_tokens", ["approval_id"])


def downgrade() -> None:
    for name in (
        "action_tokens",
        "notification_deliveries",
        "notification_outbox",
        "run_notify",
        "notification_prefs",
        "notification_channels",
        "devices",
        "push_subscriptions",
        "run_usage",
        "tool_hourly",
        "usage_hourly",
        "consumer_cursors",
    ):
        op.drop_table(name)
