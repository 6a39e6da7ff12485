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
    LargeBinary,
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
    #: ``provider_config.env`` values, sealed (``store.projects.seal_profile_env``); the
    #: stored ``provider_config.env`` shows each name with a mask.
    Column("env_sealed", Text),
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
    #: finished_at - started_at in seconds, written with finished_at (migration 0022): analytics
    #: sums run minutes without parsing dates.
    Column("run_seconds", Float),
    Column("updated_at", String(32), nullable=False),
    #: The branch and worktree paths a prepare is about to create (set before creating them,
    #: cleared once they exist): what cleanup must remove if the server dies while preparing.
    Column("workspace_intent", JSON),
    #: Times start-up resumed this run after a crash (``auto_resume`` gives up after 3).
    Column("crash_resumes", Integer, nullable=False, server_default="0"),
    #: Interrupted by the server going away (not by an operator): ``auto_resume`` may resume it.
    Column("resume_at_start", Boolean, nullable=False, server_default=false()),
    #: For a sub-run an agent started through Codeyard's MCP server: ``{"via": "mcp",
    #: "depth": n, "budget_slice_usd": x}`` (issue 22); None for runs people started.
    Column("delegation", JSON),
    #: How many times an executor took the run (issue 16): writes of an older attempt are
    #: refused (``store.fencing``), so a worker that lost the run cannot write into it.
    Column("attempt", Integer, nullable=False, server_default="0"),
    #: The worker host holding the run's worktrees (Temporal executor, issue 16); None for the
    #: local executor. Placement counts active runs per host; a takeover replaces it.
    Column("worker_host", String(200)),
    #: The workspace the run was started in (issue 22, migration 0020); None: none.
    Column("workspace_id", String(40)),
    Index("ix_runs_parent_run_id", "parent_run_id"),
    Index("ix_runs_worker_host", "worker_host", "status"),
    Index("ix_runs_created_at", "created_at"),
    Index("ix_runs_workspace_id", "workspace_id"),
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

#: Hosts that execute runs (issue 16): what each can serve, and its last heartbeat.
workers = Table(
    "workers",
    metadata,
    Column("id", String(100), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("kind", String(20), nullable=False),
    #: ``{"providers": {name: {"available", "version"}}, "repos_cached": n, ...}``
    Column("capabilities", JSON, nullable=False),
    Column("slots", Integer, nullable=False),
    Column("free_slots", Integer, nullable=False),
    Column("started_at", String(32), nullable=False),
    Column("heartbeat_at", String(32), nullable=False),
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

#: A run's agent session files as of its last checkpoint (issue 16): the worker that takes the
#: run over after its host was lost restores them, so the agent resumes its own session.
run_sessions = Table(
    "run_sessions",
    metadata,
    Column("run_id", String(40), primary_key=True),
    Column("provider", String(40), nullable=False),
    Column("session_id", String(200), nullable=False),
    #: The turns the files hold (the run's ``turns`` when they were taken).
    Column("turn", Integer, nullable=False),
    #: A gzip'd tar of the files, named relative to where the provider keeps them.
    Column("archive", LargeBinary, nullable=False),
    Column("updated_at", String(32), nullable=False),
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
    #: Hash of the tool and its normalized input: a resumed agent's identical call binds here.
    Column("fingerprint", String(64)),
    #: When the answer was handed to an agent, and the call id it answered (an answer is used
    #: once; a call cut off by a crash before its result gets the same answer again).
    Column("used_at", String(32)),
    Column("used_by", String(200)),
    Index("ix_approvals_run_fingerprint", "run_id", "fingerprint"),
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

#: Workspaces (issue 22, CodePiper's; migration 0020): a scope grouping projects, with the
#: defaults runs started in it take (provider, model, agent, env sets, policy sets, budget).
workspaces = Table(
    "workspaces",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("description", Text),
    Column("project_ids", JSON, nullable=False),
    Column("defaults", JSON, nullable=False),
    #: Only the owner (or an admin) may see, change, delete or run in it; None: admins only.
    Column("owner_id", String(40)),
    Column("created_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
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
    #: The identity commits of this user's runs carry (agents' and Codeyard's own); None: the
    #: default made from the username (migration 0018).
    Column("git_name", String(200)),
    Column("git_email", String(320)),
    #: Where one-time sign-in codes and invitations go (lower case, unique; migration 0019).
    Column("email", String(320)),
    #: The profile: a name people see and an IANA time zone (``Europe/Lisbon``).
    Column("display_name", String(200)),
    Column("time_zone", String(64)),
    #: An ed25519 key pair for pushing over SSH: the OpenSSH public key, its ``SHA256:``
    #: fingerprint, and the private key sealed with the data dir's key (never stored plain).
    Column("ssh_public_key", Text),
    Column("ssh_private_key", Text),
    Column("ssh_fingerprint", String(100)),
    Column("ssh_key_created_at", String(32)),
    #: When the picture in ``avatars`` was set (None: no picture); it versions the picture's URL.
    Column("avatar_at", String(32)),
    Index("ux_users_email", "email", unique=True),
)

#: Profile pictures (PNG, JPEG, GIF or WebP, checked by their bytes), apart from ``users``,
#: whose row every authenticated request reads.
avatars = Table(
    "avatars",
    metadata,
    Column("user_id", String(40), primary_key=True),
    Column("media_type", String(40), nullable=False),
    Column("data", LargeBinary, nullable=False),
)

#: One-time sign-in codes sent by email: digests only, single use, a few wrong guesses each.
email_codes = Table(
    "email_codes",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(40), nullable=False, index=True),
    Column("code_hash", String(64), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("expires_at", String(32), nullable=False),
    Column("created_at", String(32), nullable=False),
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

#: Process groups a run started (agents, scripts, shell steps), kept until they are gone, so a
#: restart after ``kill -9`` stops what the dead server left running (issue 12).
run_processes = Table(
    "run_processes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(40), nullable=False, index=True),
    Column("pgid", Integer, nullable=False),
    #: The leader's start time in clock ticks after boot (``/proc/<pid>/stat`` field 22).
    Column("start_ticks", BigInteger, nullable=False),
    Column("boot_id", String(64), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("created_at", String(32), nullable=False),
)

#: Browser terminals (issue 18). The scrollback tail is a file under ``<data>/terminals``; the
#: row says where the output log ends, so a reconnect after a restart replays exactly.
terminals = Table(
    "terminals",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("run_id", String(40), index=True),
    Column("created_by", String(40)),
    Column("cwd", Text, nullable=False),
    Column("command", JSON, nullable=False),
    Column("cols", Integer, nullable=False),
    Column("rows", Integer, nullable=False),
    #: live | exited | closed | lost (the server stopped while the process ran)
    Column("status", String(20), nullable=False),
    Column("exit_code", Integer),
    Column("end_offset", BigInteger, nullable=False),
    Column("close_reason", Text),
    Column("created_at", String(32), nullable=False),
    Column("closed_at", String(32)),
)

#: The block of ports a run owns (``PORT``, ``CODEYARD_PORT_0..n``): no collisions between runs.
port_leases = Table(
    "port_leases",
    metadata,
    Column("run_id", String(40), primary_key=True),
    Column("base_port", Integer, nullable=False, unique=True),
    Column("size", Integer, nullable=False),
    Column("created_at", String(32), nullable=False),
)

#: One row per utility-model call (names, NL → shell, …): what it cost.
utility_calls = Table(
    "utility_calls",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("purpose", String(60), nullable=False),
    Column("run_id", String(40)),
    Column("created_by", String(40)),
    Column("backend", String(20), nullable=False),
    Column("model", String(200), nullable=False),
    Column("input_tokens", Integer, nullable=False),
    Column("output_tokens", Integer, nullable=False),
    Column("cost_usd", Float),
    Column("ok", Boolean, nullable=False),
    Column("created_at", String(32), nullable=False, index=True),
)

# --- Analytics rollups and notifications (issue 17; migration 0010) ---------------------------

#: Where each event-log consumer (analytics rollup, notifier) has read up to: it advances in the
#: same transaction as what the consumer derived, so a crash or a replay never counts twice.
consumer_cursors = Table(
    "consumer_cursors",
    metadata,
    Column("name", String(40), primary_key=True),
    Column("last_event_id", BigInteger, nullable=False),
)

#: The dimensions every rollup row is keyed by ('' when unknown, so the unique key holds).
_ROLLUP_DIMS = ("project_id", "repo_id", "provider", "model", "agent_id", "user_id")


def _dims() -> list[Column[str]]:
    return [Column(name, String(200), nullable=False) for name in _ROLLUP_DIMS]


usage_hourly = Table(
    "usage_hourly",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    #: The UTC hour, ``YYYY-MM-DDTHH``; time zones are applied when reading.
    Column("hour", String(13), nullable=False),
    *_dims(),
    Column("input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("cache_read_tokens", BigInteger, nullable=False),
    Column("cache_write_tokens", BigInteger, nullable=False),
    Column("cost_usd", Float, nullable=False),
    Column("computed_cost_usd", Float, nullable=False),
    Column("reported_cost_usd", Float, nullable=False),
    Column("usage_events", Integer, nullable=False),
    Column("unpriced_events", Integer, nullable=False),
    Column("reported_events", Integer, nullable=False),
    Column("user_messages", Integer, nullable=False),
    Column("agent_messages", Integer, nullable=False),
    UniqueConstraint("hour", *_ROLLUP_DIMS, name="uq_usage_hourly_key"),
)

tool_hourly = Table(
    "tool_hourly",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("hour", String(13), nullable=False),
    *_dims(),
    Column("tool", String(200), nullable=False),
    #: Upper bound of the duration bucket (ms); percentiles are read from these counts.
    Column("le_ms", BigInteger, nullable=False),
    Column("calls", Integer, nullable=False),
    Column("failures", Integer, nullable=False),
    UniqueConstraint("hour", *_ROLLUP_DIMS, "tool", "le_ms", name="uq_tool_hourly_key"),
)

run_usage = Table(
    "run_usage",
    metadata,
    Column("run_id", String(40), primary_key=True),
    #: The model the usage was priced for ('' when unknown): a run may use several.
    Column("model", String(200), primary_key=True),
    Column("input_tokens", BigInteger, nullable=False),
    Column("output_tokens", BigInteger, nullable=False),
    Column("cache_read_tokens", BigInteger, nullable=False),
    Column("cache_write_tokens", BigInteger, nullable=False),
    Column("cost_usd", Float, nullable=False),
    Column("computed_cost_usd", Float, nullable=False),
    Column("reported_cost_usd", Float, nullable=False),
    Column("usage_events", Integer, nullable=False),
    Column("unpriced_events", Integer, nullable=False),
    Column("reported_events", Integer, nullable=False),
    Column("tool_calls", Integer, nullable=False),
    Column("tool_failures", Integer, nullable=False),
    Column("messages", Integer, nullable=False),
)

push_subscriptions = Table(
    "push_subscriptions",
    metadata,
    Column("id", String(40), primary_key=True),
    #: '' for the admin token.
    Column("user_id", String(40), nullable=False, index=True),
    Column("endpoint", Text, nullable=False),
    Column("endpoint_hash", String(64), nullable=False, unique=True),
    Column("p256dh", Text, nullable=False),
    Column("auth", Text, nullable=False),
    Column("user_agent", String(300)),
    Column("created_at", String(32), nullable=False),
    Column("last_success_at", String(32)),
)

devices = Table(
    "devices",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(40), nullable=False, index=True),
    Column("platform", String(10), nullable=False),
    #: The APNs/FCM token, sealed with the data dir's key; ``token_hash`` finds duplicates.
    Column("token_sealed", Text, nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("name", String(200)),
    Column("created_at", String(32), nullable=False),
    Column("last_success_at", String(32)),
)

notification_channels = Table(
    "notification_channels",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("user_id", String(40), nullable=False, index=True),
    Column("kind", String(40), nullable=False),
    Column("name", String(200), nullable=False),
    #: URL and signing secret, sealed: webhook URLs are credentials (Slack, Discord).
    Column("config_sealed", Text, nullable=False),
    Column("created_at", String(32), nullable=False),
)

notification_prefs = Table(
    "notification_prefs",
    metadata,
    Column("user_id", String(40), primary_key=True),
    Column("events", JSON, nullable=False),
    Column("quiet_start", String(5)),
    Column("quiet_end", String(5)),
    Column("timezone", String(64), nullable=False),
    Column("updated_at", String(32), nullable=False),
)

run_notify = Table(
    "run_notify",
    metadata,
    Column("run_id", String(40), primary_key=True),
    Column("notify", Boolean, nullable=False),
    Column("updated_at", String(32), nullable=False),
)

notification_outbox = Table(
    "notification_outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event_id", BigInteger, nullable=False),
    Column("run_id", String(40), nullable=False),
    Column("user_id", String(40), nullable=False),
    #: ``webpush:<id>``, ``channel:<id>`` or ``device:<id>``.
    Column("target", String(60), nullable=False),
    Column("kind", String(40), nullable=False),
    #: Same tag (web push ``Topic``) for an approval's alert and its later replacement.
    Column("tag", String(80), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("status", String(20), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", String(32), nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("sent_at", String(32)),
    Column("last_error", Text),
    UniqueConstraint("event_id", "target", "user_id", name="uq_outbox_event_target_user"),
    Index("ix_outbox_status_due", "status", "next_attempt_at"),
)

notification_deliveries = Table(
    "notification_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("outbox_id", Integer),
    Column("user_id", String(40), nullable=False),
    Column("target", String(60), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("status_code", Integer),
    Column("error", Text),
    Column("duration_ms", Integer, nullable=False),
    Column("at", String(32), nullable=False),
    Index("ix_deliveries_target", "target", "id"),
)

action_tokens = Table(
    "action_tokens",
    metadata,
    Column("nonce", String(40), primary_key=True),
    Column("approval_id", String(40), nullable=False, index=True),
    Column("user_id", String(40), nullable=False),
    Column("expires_at", String(32), nullable=False),
    Column("used_at", String(32)),
)

#: Files a run produced or registered (issue 22): a path inside the run's worktree, with the
#: content type and digest taken when it was registered.
artifacts = Table(
    "artifacts",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("run_id", String(40), nullable=False, index=True),
    Column("repo_id", String(40)),
    Column("path", Text, nullable=False),
    Column("name", String(250), nullable=False),
    Column("content_type", String(200), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("source", String(20), nullable=False),
    Column("created_at", String(32), nullable=False),
)

#: A project's managed documents (issue 22): generated blocks between markers, human text around.
project_docs = Table(
    "project_docs",
    metadata,
    Column("project_id", String(40), primary_key=True),
    Column("slug", String(100), primary_key=True),
    Column("title", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("generated_at", String(32)),
    Column("updated_at", String(32), nullable=False),
    Column("updated_by", String(40)),
)

#: One entry per landed run of a project (issue 22's AI changelog).
changelog_entries = Table(
    "changelog_entries",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("project_id", String(40), nullable=False),
    Column("run_id", String(40), nullable=False),
    Column("title", Text, nullable=False),
    Column("summary", Text, nullable=False),
    Column("files", JSON, nullable=False),
    Column("created_at", String(32), nullable=False),
    Index("ix_changelog_project", "project_id", "created_at"),
)

#: Tickets of a project (issue 19), numbered per project. Search: ``tickets_fts`` (SQLite FTS5)
#: or a GIN ``tsvector`` index (PostgreSQL), both made by migration 0015.
tickets = Table(
    "tickets",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("project_id", String(40), nullable=False),
    Column("number", Integer, nullable=False),
    Column("title", String(300), nullable=False),
    Column("body", Text, nullable=False),
    Column("kind", String(20), nullable=False),
    Column("priority", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("labels", JSON, nullable=False),
    #: ``parent`` and ``blocked_by`` are ticket numbers of the same project.
    Column("parent", Integer),
    Column("blocked_by", JSON, nullable=False),
    Column("assignee_user_id", String(40)),
    Column("assignee_agent_id", String(40)),
    #: Every run that worked the ticket, oldest first; ``current_run_id`` is the newest.
    Column("run_ids", JSON, nullable=False),
    Column("current_run_id", String(40)),
    Column("created_by", String(40)),
    Column("created_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
    UniqueConstraint("project_id", "number", name="uq_tickets_project_number"),
    Index("ix_tickets_project_status", "project_id", "status", "number"),
    Index("ix_tickets_current_run", "current_run_id"),
)

ticket_comments = Table(
    "ticket_comments",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("ticket_id", String(40), nullable=False),
    Column("author_id", String(40)),
    Column("body", Text, nullable=False),
    Column("mentions", JSON, nullable=False),
    Column("created_at", String(32), nullable=False),
    Index("ix_ticket_comments_ticket", "ticket_id", "created_at"),
)

#: Reviews of a run's work (approved / changes_requested / commented), with diff-line comments.
reviews = Table(
    "reviews",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("run_id", String(40), nullable=False),
    Column("ticket_id", String(40)),
    Column("verdict", String(20), nullable=False),
    Column("body", Text, nullable=False),
    Column("comments", JSON, nullable=False),
    Column("author_id", String(40)),
    Column("created_at", String(32), nullable=False),
    Index("ix_reviews_run", "run_id", "created_at"),
    Index("ix_reviews_ticket", "ticket_id", "created_at"),
)

#: Work queues: tickets run in order, each from the previous one's landed result.
work_queues = Table(
    "work_queues",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("project_id", String(40), nullable=False),
    Column("name", String(200), nullable=False),
    #: Ticket numbers in queue order.
    Column("tickets", JSON, nullable=False),
    #: Per ticket number (as text): ``{"state": pending|running|done|failed|skipped, "run_id",
    #: "reason"}``.
    Column("items", JSON, nullable=False),
    Column("max_parallel", Integer, nullable=False),
    Column("land", String(20), nullable=False),
    Column("status", String(20), nullable=False),
    Column("paused_reason", Text),
    Column("created_by", String(40)),
    Column("created_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
    #: What the queue's runs may spend together (None: no limit; migration 0018).
    Column("budget_usd", Float),
    Index("ix_work_queues_project", "project_id", "created_at"),
)

#: Plans (issue 19): a goal, the utility model's proposed tickets (editable), and once accepted
#: the ticket number each proposal's ``ref`` became (migration 0018).
plans = Table(
    "plans",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("project_id", String(40), nullable=False),
    Column("goal", Text, nullable=False),
    Column("title", String(300), nullable=False),
    Column("summary", Text, nullable=False),
    #: ``[{ref, title, body, kind, priority, blocked_by: [ref], blocked_by_tickets: [number]}]``
    Column("tickets", JSON, nullable=False),
    #: draft | accepted
    Column("status", String(20), nullable=False),
    #: ``{ref: ticket number}`` once accepted.
    Column("ticket_numbers", JSON),
    Column("attempts", Integer, nullable=False),
    Column("input_tokens", Integer, nullable=False),
    Column("output_tokens", Integer, nullable=False),
    Column("cost_usd", Float),
    Column("created_by", String(40)),
    Column("created_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
    Index("ix_plans_project", "project_id", "created_at"),
)

#: Discovery conversations (issue 19): a read-only agent run and the actions it proposed, each
#: ``{id, type, …its fields, state: proposed|accepted|rejected, ticket_number, run_id}``.
discoveries = Table(
    "discoveries",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("project_id", String(40), nullable=False),
    Column("run_id", String(40), nullable=False),
    Column("question", Text, nullable=False),
    Column("actions", JSON, nullable=False),
    #: The run's turn whose answer the proposed actions were read from (0: none yet).
    Column("read_turn", Integer, nullable=False),
    #: Why the last answer proposed nothing readable (no JSON block, a field that did not fit).
    Column("actions_error", Text),
    Column("created_by", String(40)),
    Column("created_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
    Index("ix_discoveries_project", "project_id", "created_at"),
)

#: Each repository's local checks (issue 21): named commands and what they gate.
repo_checks = Table(
    "repo_checks",
    metadata,
    Column("repo_id", String(40), primary_key=True),
    #: ``[{name, command, timeout_seconds}]`` in the order they run.
    Column("checks", JSON, nullable=False),
    #: Passing checks on the worktree's current state are required to land.
    Column("required", Boolean, nullable=False),
    #: Run them whenever a turn ends (else only on demand).
    Column("after_turn", Boolean, nullable=False),
    #: Hand a failure back to the agent as its next turn (at most 3 per run).
    Column("fix_loop", Boolean, nullable=False),
    Column("updated_at", String(32), nullable=False),
)

#: The GitHub webhook inbox (issue 21): unique on ``X-GitHub-Delivery``, processed later.
github_deliveries = Table(
    "github_deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", String(80), nullable=False, unique=True),
    Column("event", String(60), nullable=False),
    Column("action", String(60)),
    Column("payload", Text, nullable=False),
    Column("received_at", String(32), nullable=False),
    Column("processed_at", String(32)),
    #: What processing did (or why it did nothing).
    Column("outcome", Text),
    #: ``webhook`` (GitHub called us) or ``redelivery`` (the sweeper asked GitHub for it).
    Column("source", String(20), nullable=False),
    #: ``X-GitHub-Hook-ID`` and the repository's ``owner/name`` (None for app-wide events).
    Column("hook_id", String(40)),
    Column("repo", String(200)),
    Index("ix_github_deliveries_processed_at", "processed_at"),
)

#: Webhooks deliveries arrived from (learnt from their headers): what the sweeper checks.
github_hooks = Table(
    "github_hooks",
    metadata,
    Column("hook_id", String(40), primary_key=True),
    #: ``repository`` or ``integration`` (a GitHub App's hook), from the delivery's headers.
    Column("target", String(40), nullable=False),
    Column("repo", String(200)),
    #: When the sweeper last listed its deliveries.
    Column("swept_at", String(32)),
    Column("created_at", String(32), nullable=False),
)

#: Failures already handed back to an agent (issue 21's fix loops): one row per failure key.
feedback_marks = Table(
    "feedback_marks",
    metadata,
    Column("key", String(300), primary_key=True),
    #: What the cap counts over: ``run:<id>`` or ``pr:<repo>#<number>``.
    Column("scope", String(300), nullable=False),
    Column("run_id", String(40), nullable=False),
    #: ``checks`` (local), ``ci`` or ``review``.
    Column("source", String(20), nullable=False),
    #: False once a human comment reset the cap.
    Column("counted", Boolean, nullable=False),
    Column("created_at", String(32), nullable=False),
    Index("ix_feedback_marks_scope", "scope"),
)

#: Workflow definitions (issue 20); every saved version is kept in ``workflow_versions``.
workflows = Table(
    "workflows",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("description", Text),
    Column("version", Integer, nullable=False),
    Column("definition", JSON, nullable=False),
    #: The text as written (YAML or JSON), shown in the editor.
    Column("source", Text, nullable=False),
    #: Where it was loaded from (``<repo path>:.codeyard/workflows/x.yaml``), None when posted.
    Column("origin", Text),
    Column("owner_id", String(40)),
    Column("created_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
    Index("ix_workflows_name", "name"),
)

workflow_versions = Table(
    "workflow_versions",
    metadata,
    Column("workflow_id", String(40), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("definition", JSON, nullable=False),
    Column("source", Text, nullable=False),
    Column("created_at", String(32), nullable=False),
)

#: One execution of a workflow: the resolved definition and inputs are a snapshot taken at start.
workflow_executions = Table(
    "workflow_executions",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("workflow_id", String(40), nullable=False),
    Column("workflow_version", Integer, nullable=False),
    Column("status", String(20), nullable=False),
    Column("status_reason", Text),
    Column("definition", JSON, nullable=False),
    Column("definition_hash", String(64), nullable=False),
    Column("inputs", JSON, nullable=False),
    #: Where run steps work: ``{"project_id"}`` or ``{"repo_path"}``.
    Column("target", JSON, nullable=False),
    Column("budget_usd", Float),
    Column("spent_usd", Float, nullable=False),
    Column("outputs", JSON, nullable=False),
    Column("created_by", String(40)),
    #: The starter's name, kind and scopes: run steps act with exactly these.
    Column("principal", JSON, nullable=False),
    Column("last_seq", Integer, nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("updated_at", String(32), nullable=False),
    Column("finished_at", String(32)),
    Index("ix_workflow_executions_workflow", "workflow_id", "created_at"),
    Index("ix_workflow_executions_status", "status"),
)

#: An execution's append-only log of ``workflow.*`` events; step state is folded from it.
workflow_events = Table(
    "workflow_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("execution_id", String(40), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("type", String(60), nullable=False),
    Column("ts", String(32), nullable=False),
    Column("data", JSON, nullable=False),
    Index("ix_workflow_events_execution_seq", "execution_id", "seq", unique=True),
)
