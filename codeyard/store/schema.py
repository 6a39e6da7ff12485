"""Tables (SQLAlchemy Core). Alembic migrations in ``migrations/`` create exactly these."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

metadata = MetaData()

projects = Table(
    "projects",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("slug", String(100), nullable=False, unique=True),
    Column("policy_set_ids", JSON),
    Column("created_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
    #: Who created it (None: the admin token, or made before owners existed: admins only).
    Column("owner_id", String(40)),
    #: Users the owner shares it with: they may change it like the owner, not delete it.
    Column("member_ids", JSON),
)

repos = Table(
    "repos",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("project_id", String(40), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("path", Text, nullable=False),
    Column("url", Text),
    Column("default_branch", String(200)),
    Column("setup_script", Text),
    Column("cleanup_script", Text),
    Column("copy_files", JSON, nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
)

agents = Table(
    "agents",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("provider", String(40), nullable=False),
    Column("model", String(200)),
    Column("instructions", Text),
    Column("allowed_tools", JSON, nullable=False),
    Column("disallowed_tools", JSON, nullable=False),
    Column("max_turns", Integer),
    Column("permission_mode", String(20), nullable=False),
    Column("policy_set_ids", JSON, nullable=False),
    Column("env_set_ids", JSON, nullable=False),
    Column("provider_config", JSON, nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("number", Integer, nullable=False, unique=True),
    Column("title", Text, nullable=False),
    Column("prompt", Text, nullable=False),
    Column("project_id", String(40), nullable=False, index=True),
    Column("repo_ids", JSON, nullable=False),
    Column("agent_id", String(40)),
    Column("provider", String(40), nullable=False),
    Column("model", String(200)),
    Column("agent_options", JSON, nullable=False),
    Column("status", String(20), nullable=False, index=True),
    Column("status_reason", Text),
    Column("resolution", String(20)),
    Column("source_ref", String(200), nullable=False),
    Column("base_commits", JSON, nullable=False),
    Column("branch", String(250)),
    Column("worktrees", JSON, nullable=False),
    Column("parent_run_id", String(40)),
    Column("session_id", Text),
    Column("agent_state", JSON, nullable=False),
    Column("turns", Integer, nullable=False),
    Column("usage", JSON, nullable=False),
    Column("budget_usd", Float),
    Column("pending_approvals", Integer, nullable=False),
    Column("pending_messages", JSON, nullable=False),
    Column("diff_stats", JSON, nullable=False),
    Column("pull_request", JSON),
    Column("archived", Boolean, nullable=False),
    Column("labels", JSON, nullable=False),
    Column("last_seq", Integer, nullable=False),
    Column("trusted", Boolean, nullable=False, server_default=false()),
    Column("policy_set_ids", JSON),
    #: Periods ("daily": "2026-11-22", "monthly": "2026-11") in which an operator let this run
    #: go past the global cap.
    Column("cap_waivers", JSON),
    Column("queued_at", String(32)),
    #: The user who created the run; None for the admin token (and runs before users existed).
    Column("created_by", String(40)),
    Column("created_at", String(32), nullable=False),
    Column("started_at", String(32)),
    Column("finished_at", String(32)),
    Column("updated_at", String(32), nullable=False),
)

events = Table(
    "events",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    ),
    Column("run_id", String(40), nullable=False),
    Column("project_id", String(40), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("type", String(40), nullable=False),
    Column("ts", String(32), nullable=False),
    Column("data", Text, nullable=False),
    Index("ix_events_run_seq", "run_id", "seq", unique=True),
    Index("ix_events_project_id", "project_id", "id"),
    Index("ix_events_type_ts", "type", "ts"),
)

counters = Table(
    "counters",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

checkpoints = Table(
    "checkpoints",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("run_id", String(40), nullable=False),
    Column("number", Integer, nullable=False),
    Column("turn", Integer, nullable=False),
    Column("kind", String(20), nullable=False),
    Column("description", Text),
    Column("commits", JSON, nullable=False),
    Column("diff_stats", JSON, nullable=False),
    Column("created_at", String(32), nullable=False),
    UniqueConstraint("run_id", "number", name="uq_checkpoints_run_number"),
)

settings = Table(
    "settings",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("value", JSON),
    Column("updated_at", String(32), nullable=False),
)

policies = Table(
    "policies",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("priority", Integer, nullable=False),
    Column("rules", JSON, nullable=False),
    #: Set for the rules an approval's ``remember: "run"`` adds: they apply to that run only.
    Column("scope_run_id", String(40)),
    Column("created_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
)

policy_sets = Table(
    "policy_sets",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("policy_ids", JSON, nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
)

approvals = Table(
    "approvals",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("run_id", String(40), nullable=False, index=True),
    Column("call_id", String(200), nullable=False),
    Column("tool", String(200), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("input", JSON, nullable=False),
    Column("title", Text, nullable=False),
    Column("rule", String(200)),
    Column("status", String(20), nullable=False, index=True),
    Column("decided_by", String(200)),
    Column("reason", Text),
    Column("remember", String(20)),
    Column("created_at", String(32), nullable=False),
    Column("resolved_at", String(32)),
    Column("expires_at", String(32), nullable=False),
)

policy_decisions = Table(
    "policy_decisions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(40), nullable=False),
    Column("call_id", String(200), nullable=False),
    Column("tool", String(200), nullable=False),
    Column("decision", String(10), nullable=False),
    Column("rule", String(200)),
    Column("reason", Text),
    Column("created_at", String(32), nullable=False),
    Index("ix_policy_decisions_run_id", "run_id", "id"),
)

env_sets = Table(
    "env_sets",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("ciphertext", Text, nullable=False),
    Column("keys", JSON, nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
    #: Only the owner (or an admin) may use, read, change or delete it; None: admins only.
    Column("owner_id", String(40)),
)

users = Table(
    "users",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("username", String(100), nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),
    Column("role", String(20), nullable=False),
    #: The TOTP secret once verified; ``totp_pending`` holds one being set up.
    #: Both sealed with the data dir's key (``services.auth.seal_totp``), never stored plain.
    Column("totp_secret", Text),
    Column("totp_pending", Text),
    #: The last TOTP time step accepted: a code of that step or an earlier one is a replay.
    Column("totp_last_step", BigInteger),
    Column("created_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(40), primary_key=True),
    #: SHA-256 of the cookie value; the value itself is never stored.
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("csrf_hash", String(64), nullable=False),
    #: None: a session opened with the admin token.
    Column("user_id", String(40), index=True),
    #: None: the user's role scopes; else the scopes of the token it was opened with.
    Column("scopes", JSON),
    Column("user_agent", String(300)),
    Column("created_at", String(32), nullable=False),
    Column("last_seen_at", String(32), nullable=False),
    Column("expires_at", String(32), nullable=False),
    #: The token a ``token-login`` session was opened with: revoking it ends the session.
    Column("token_id", String(40), index=True),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(40), index=True),
    Column("name", String(200), nullable=False),
    Column("prefix", String(20), nullable=False),
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("scopes", JSON, nullable=False),
    Column("expires_at", String(32)),
    Column("last_used_at", String(32)),
    Column("created_at", String(32), nullable=False),
    #: The token that created this one (directly or through a token-login session).
    Column("parent_id", String(40), index=True),
)

recovery_codes = Table(
    "recovery_codes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("user_id", String(40), nullable=False, index=True),
    Column("code_hash", String(64), nullable=False),
    Column("used_at", String(32)),
)

share_links = Table(
    "share_links",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("run_id", String(40), nullable=False, index=True),
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("created_by", String(40)),
    Column("expires_at", String(32), nullable=False),
    Column("created_at", String(32), nullable=False),
)

#: Changes to settings that run in every user's runs (repo scripts, copied files): who, what.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("actor", String(100), nullable=False),
    Column("action", String(100), nullable=False),
    Column("object_id", String(40), nullable=False),
    Column("details", JSON, nullable=False),
    Column("created_at", String(32), nullable=False),
)
