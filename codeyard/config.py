"""Settings: defaults, then ``CODEYARD_*`` environment variables, then command-line flags."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Host names that always reach this machine: allowed by the Host check without configuring.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "[::1]")

#: The ceiling of ``max_concurrent_runs`` (configured or stored through the API).
MAX_CONCURRENT_RUNS = 4096

#: How long an idle keep-alive connection stays open. Uvicorn's 5 s equals httpx's (and many
#: clients') own expiry, so a request sent on a connection idle for just under 5 s met the
#: server closing it: "Server disconnected without sending a response". Longer than a client
#: or a proxy keeps idle connections (nginx 60 s, common load balancers 60 s), so they close
#: first and a reused connection is never one the server is dropping.
KEEP_ALIVE_SECONDS = 75


def default_data_dir() -> Path:
    return Path(os.environ.get("CODEYARD_HOME", "~/.codeyard")).expanduser()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CODEYARD_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8420
    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = None
    admin_token: str | None = None
    #: Runs worked on at once; the rest wait in ``queued``. The ceiling is what one host was
    #: measured to hold (bench/runs_scale.py: 1,000 live script runs); real agents are bounded
    #: by memory first (bench/agents_scale.py), and every live run holds a few descriptors.
    max_concurrent_runs: int = Field(default=4, ge=1, le=MAX_CONCURRENT_RUNS)
    bash_timeout_seconds: float = Field(default=600.0, gt=0)
    #: What every process a run starts (agent CLIs and their tools, scripts, preparation's
    #: git) is niced by, so the server's own event loop gets the CPU first; 0: as the server.
    agent_niceness: int = Field(default=10, ge=0, le=19)
    #: Runs that start (take their attempt, lease, options, and make their worktrees) at once
    #: on this host; the rest wait in ``queued``, first come first served; 0: twice the CPUs.
    preparation_concurrency: int = Field(default=0, ge=0, le=MAX_CONCURRENT_RUNS)
    #: An agent that keeps retrying an unreachable model this long fails its turn with the
    #: CLI's own message (Codex would otherwise wait for the network for ever).
    model_unreachable_seconds: float = Field(default=120.0, gt=0)
    event_batch_max: int = Field(default=5000, ge=1)
    #: Permission mode for runs without an agent profile: default (ask for writes and
    #: commands), plan (deny writes) or auto (allow; hard gates still ask).
    default_permission_mode: Literal["default", "plan", "auto"] = "default"
    #: A signed-in session ends after this many minutes without a request…
    session_idle_minutes: float = Field(default=12 * 60, gt=0)
    #: …and this many hours after sign-in, however active.
    session_max_hours: float = Field(default=7 * 24, gt=0)
    #: Browser origins allowed to call the API cross-origin (comma-separated); empty: CORS off.
    cors_origins: str = ""
    #: Largest request body accepted (bytes); bigger ones get 413.
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    #: Runs one principal may create per minute (429 with Retry-After beyond).
    run_create_per_minute: int = Field(default=60, ge=1)
    #: Serve HTTPS directly with this certificate and key (PEM files).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: TLS is terminated by a proxy in front: no warning when binding a public address, and
    #: X-Forwarded-For/-Proto are trusted from ``forwarded_allow_ips`` (default: loopback).
    behind_tls_proxy: bool = False
    #: Proxy addresses whose X-Forwarded-* headers are trusted (comma-separated, or "*").
    #: Empty and not ``behind_tls_proxy``: the headers are ignored.
    forwarded_allow_ips: str = ""
    #: Host header values accepted (comma-separated; "*" for any): a DNS-rebinding page
    #: reaches the server under its own name and is refused. Loopback names are always allowed.
    allowed_hosts: str = ""
    #: Seconds a clone of a project's URL may take (waiting for a clone slot included).
    clone_timeout_seconds: float = Field(default=60.0, gt=0)
    #: Clones one user may run at once, and event streams (SSE and WebSocket) one user may hold.
    max_clones_per_user: int = Field(default=2, ge=1)
    max_streams_per_user: int = Field(default=64, ge=1)
    #: The bubblewrap binary that contains agents (default: ``bwrap`` on PATH).
    bwrap_path: str | None = None
    #: The address people reach this server at (links in notifications); default host:port.
    public_url: str = ""
    #: Seconds an approval alert waits before it is sent (skipped if answered meanwhile).
    notify_grace_seconds: float = Field(default=3.0, ge=0, le=600)
    #: VAPID ``sub`` claim for web push (a mailto: or https: contact for push services).
    vapid_subject: str = "mailto:codeyard@localhost"
    #: Slack's Web API (chat.postMessage, chat.update, apps.connections.open for Socket Mode).
    slack_api_url: str = "https://slack.com/api/"
    #: Where native-app pushes (APNs/FCM) are relayed; unset: devices are stored, not pushed.
    push_relay_url: str = ""
    push_relay_token: str = ""
    #: Direct APNs (token-based): the team's .p8 key file, its key id, the team id and the app's
    #: bundle id; when all four are set, iOS pushes go to Apple instead of the relay.
    apns_key_path: Path | None = None
    apns_key_id: str = ""
    apns_team_id: str = ""
    apns_topic: str = ""
    apns_url: str = "https://api.push.apple.com"
    #: Direct FCM HTTP v1: a Firebase service-account JSON key file; when set, Android pushes
    #: go to Google instead of the relay.
    fcm_service_account_path: Path | None = None
    fcm_url: str = "https://fcm.googleapis.com"
    #: Terminals without viewers or output close after this many minutes (issue 18).
    terminal_idle_minutes: float = Field(default=30.0, gt=0)
    #: Output each terminal keeps in memory for replay; the last 512 KiB also on disk.
    terminal_scrollback_bytes: int = Field(default=2 * 1024 * 1024, ge=64 * 1024)
    #: Host-mode previews are served on ``<run>-<n>.<preview_domain>`` (``*.localhost``
    #: resolves to this machine in browsers; use a wildcard DNS name when serving remotely).
    preview_domain: str = "preview.localhost"
    #: Sub-runs agents start through Codeyard's MCP server (issue 22): how deep a chain of
    #: delegated runs may go, how many sub-runs one run may start, and the largest share of the
    #: parent's remaining budget one sub-run may take.
    mcp_max_depth: int = Field(default=2, ge=1, le=10)
    mcp_max_children: int = Field(default=4, ge=1, le=100)
    mcp_budget_share: float = Field(default=0.5, gt=0, le=1)
    #: Where agents reach this server's MCP endpoint; default ``http://<host>:<port>/mcp``.
    mcp_url: str | None = None
    #: Serve the CLI's Unix socket ``<data dir>/run/cli.sock`` (issue 22): password and
    #: two-factor resets with OS permissions as the authentication (``codeyard.cli_socket``).
    cli_socket: bool = True
    #: Hybrid code search (issue 22): each indexed file also gets a vector from a local model
    #: shipped in the ``wordllama`` wheel (``pip install 'codeyard[embeddings]'``; no network),
    #: fused with the lexical ranking (SQLite and PostgreSQL indexes alike).
    code_index_embeddings: bool = False
    #: Which model makes those vectors: ``local`` (the WordLlama wheel) or ``openai``: any
    #: OpenAI-compatible ``POST {url}/embeddings`` (``codeindex.remote``); if that endpoint
    #: fails, indexing and search go on lexically with a logged warning.
    code_index_embedder: Literal["local", "openai"] = "local"
    code_index_embeddings_url: str = Field(
        default="https://api.openai.com/v1", pattern=r"^https?://", max_length=500
    )
    code_index_embeddings_model: str = Field(default="text-embedding-3-small", min_length=1)
    #: Sent as ``Authorization: Bearer``; never logged. Better kept out of the configuration:
    #: an env set (encrypted at rest, ``POST /api/env-sets``) named by
    #: ``code_index_embeddings_env_set`` holds it in ``code_index_embeddings_key_variable``;
    #: with no env set, that variable is read from the server's own environment (only when
    #: named: a key is never sent to an endpoint nobody chose it for). First found wins: the
    #: env set, the variable, this plain key.
    code_index_embeddings_key: str = Field(default="", repr=False)
    code_index_embeddings_env_set: str | None = Field(default=None, max_length=100)
    code_index_embeddings_key_variable: str | None = Field(
        default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=100
    )
    #: Who executes runs: ``local`` (this process) or ``temporal`` (worker hosts started with
    #: ``codeyard worker``; this server then keeps no run state: docs/scale-out.md).
    executor: Literal["local", "temporal"] = "local"
    #: The Temporal frontend (host:port) and namespace of ``executor = temporal``.
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    #: The secret GitHub signs webhook deliveries with (``X-Hub-Signature-256``); empty: the
    #: webhook route refuses every delivery (issue 21).
    github_webhook_secret: str = Field(default="", repr=False)
    #: How often the sweeper asks GitHub for deliveries that never arrived and redelivers them.
    github_sweep_seconds: float = Field(default=300.0, ge=1)
    #: Without a webhook secret, one poller follows every run's pull request within this many
    #: GitHub API requests per hour (0: no polling); the rest of the quota stays the user's.
    github_poll_budget_per_hour: int = Field(default=1000, ge=0, le=5000)
    #: The SMTP server that sends one-time sign-in codes and invitations (issue 19); empty:
    #: email sign-in is off. ``smtp_security``: ``starttls``, ``tls`` (implicit) or ``none``.
    smtp_host: str = ""
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str = ""
    smtp_password: str = Field(default="", repr=False)
    #: The sender of Codeyard's mail.
    smtp_from: str = "Codeyard <codeyard@localhost>"
    #: Minutes an emailed sign-in code stays valid.
    email_code_minutes: float = Field(default=10.0, gt=0, le=60)

    @model_validator(mode="after")
    def _temporal_needs_postgresql(self) -> Settings:
        """Worker hosts write the same database as the API servers: SQLite cannot be shared."""
        if self.executor == "temporal" and not (self.database_url or "").startswith("postgresql"):
            raise ValueError(
                "executor 'temporal' needs PostgreSQL: set CODEYARD_DATABASE_URL="
                "postgresql+asyncpg://… (worker hosts write the same database; docs/scale-out.md)"
            )
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'codeyard.db'}"

    @property
    def external_url(self) -> str:
        """Where people reach this server: ``public_url``, else the bound address. Links the
        server hands out (share links) use it, never the request's Host header, which a
        client or a DNS-rebinding page chooses."""
        if self.public_url:
            return self.public_url.rstrip("/")
        scheme = "https" if self.tls_cert or self.behind_tls_proxy else "http"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}"

    @property
    def allowed_host_names(self) -> list[str]:
        """``allowed_hosts`` as lower-case names (ports stripped), plus the loopback names."""
        names = [h.strip().lower() for h in self.allowed_hosts.split(",") if h.strip()]
        return [*LOOPBACK_NAMES, *names]

    @property
    def allowed_origins(self) -> list[str]:
        """``cors_origins`` as a list (trailing slashes dropped)."""
        return [o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip()]

    @property
    def secret_key_path(self) -> Path:
        """The AES-GCM key that encrypts env sets (created 0600 on first use)."""
        return self.data_dir / "secret.key"

    @property
    def worktree_root(self) -> Path:
        return self.data_dir / "worktrees"

    @property
    def repos_root(self) -> Path:
        """Where repositories registered by URL are cloned."""
        return self.data_dir / "repos"

    @property
    def logs_root(self) -> Path:
        return self.data_dir / "logs"

    def prepare_data_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for sub in (self.worktree_root, self.repos_root, self.logs_root):
            sub.mkdir(exist_ok=True)

    def ensure_admin_token(self) -> str:
        """The configured token, else the one in ``admin.token``, else a new one written 0600."""
        if self.admin_token:
            return self.admin_token
        path = self.data_dir / "admin.token"
        if path.exists():
            token = path.read_text().strip()
            if token:
                return token
        token = "cy_" + secrets.token_urlsafe(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(token + "\n")
        return token

    def write_server_file(self, url: str) -> None:
        """Tell the CLI where the running server is (``server.json`` in the data dir)."""
        path = self.data_dir / "server.json"
        path.write_text(json.dumps({"url": url, "pid": os.getpid()}))
