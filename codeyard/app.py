"""Builds the FastAPI app: wiring only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Route

from codeyard import __version__, gc_freeze
from codeyard.agents import builtin as builtin_providers
from codeyard.api import lazy, preview_host, problems, route_index, webui
from codeyard.api.auth import require_principal
from codeyard.api.hosts import HostAllowlistMiddleware, allowed_hosts
from codeyard.api.limits import SlidingWindow, limit_run_creation
from codeyard.api.middleware import (
    BodyLimitMiddleware,
    SecurityHeadersMiddleware,
    WebSocketOriginMiddleware,
)
from codeyard.background import AnsweredMiddleware, Background
from codeyard.cluster.failures import SharedFailures
from codeyard.cluster.ratelimit import SharedWindow
from codeyard.config import Settings
from codeyard.crypto import secret_box
from codeyard.domain.events import parse_event
from codeyard.events.hub import Hub
from codeyard.events.pg_fanout import PgFanout
from codeyard.executor.interface import Executor
from codeyard.executor.local import LocalExecutor
from codeyard.mcp_server import mount as mcp_mount
from codeyard.preview.detect import PortWatcher
from codeyard.run_workspace.admission import limit_preparations
from codeyard.services import auth as auth_service
from codeyard.services import sandbox as sandbox_service
from codeyard.services import settings as settings_service
from codeyard.services import terminals as terminal_service
from codeyard.services.context import Services
from codeyard.store import settings as settings_store
from codeyard.store import wakeups
from codeyard.store.db import create_engine, migrate
from codeyard.store.writer import Writer
from codeyard.terminals.manager import TerminalManager
from codeyard.voice.config import MAX_AUDIO_BYTES
from codeyard.workers.registry import Heartbeat

if TYPE_CHECKING:  # the turn code loads when the executor starts taking runs (issue 15)
    from codeyard.executor.turn_options import OptionHook

# By name; each provider's module loads when a run or a listing first needs it (issue 15).
builtin_providers.register_all()


@asynccontextmanager
async def _running(
    app: FastAPI,
    settings: Settings,
    announce: Callable[[str], None] | None,
    background: Background,
) -> AsyncIterator[Services]:
    """Start storage, the writer and the executor, then (now or after the first answer) the
    background features; stop them in reverse order."""
    settings.prepare_data_dir()
    app.state.admin_token = settings.ensure_admin_token()
    app.state.auth = auth_service.AuthState(
        app.state.admin_token,
        session_idle_seconds=settings.session_idle_minutes * 60,
        session_max_seconds=settings.session_max_hours * 3600,
    )
    engine = create_engine(settings.resolved_database_url)
    await migrate(engine)
    hub = Hub()
    # PostgreSQL: events reach the hub in commit order through LISTEN/NOTIFY, the ones other
    # processes write included (issue 16); SQLite: the writer publishes to the hub directly.
    fanout = PgFanout(engine, hub) if engine.dialect.name == "postgresql" else None
    app.state.fanout = fanout
    if fanout is not None:
        await fanout.start()  # it also keeps the stored settings in memory while it listens
    else:  # SQLite: this process is the one writer, so it sees every write
        settings_store.hear_writes(engine)
        wakeups.hear_all(engine)
    writer = Writer(
        engine,
        fanout.committed if fanout is not None else hub.publish,
        batch_max=settings.event_batch_max,
        token=fanout.token if fanout is not None else None,
    )
    await writer.start()
    if engine.dialect.name == "postgresql":  # every API server counts one window (issue 16)
        app.state.run_rate = SharedWindow(writer, settings.run_create_per_minute)
        app.state.auth.shared = SharedFailures(engine, writer)
    executor = LocalExecutor(
        engine,
        writer,
        default_permission_mode=settings.default_permission_mode,
        max_concurrent_runs=(await settings_service.effective(engine, settings))[
            "max_concurrent_runs"
        ],
        worktree_root=settings.worktree_root,
        logs_root=settings.logs_root,
        bash_timeout=settings.bash_timeout_seconds,
        secrets=secret_box(settings.secret_key_path),
    )
    executor.contain_with(sandbox_service.base(settings))
    limit_preparations(settings.preparation_concurrency)
    executor.fail_unreachable_models_after(settings.model_unreachable_seconds)
    chosen = _chosen_executor(settings, executor)
    services = Services(settings, engine, writer, hub, chosen)
    app.state.services = services
    if announce is not None:
        state = await sandbox_service.status(services)
        if state["warning"] or not state["available"]:
            announce(state["warning"] or f"SANDBOX UNAVAILABLE: runs will fail: {state['problem']}")
    if announce is not None and await auth_service.setup_required(services):
        announce(
            "No user exists yet: open the login URL and create the first admin with setup code "
            f"{app.state.auth.setup_code}"
        )
    executor.add_option_hook(_mcp_offer(settings))  # profiles opting in get /mcp
    executor.hold_work_until(background.started.wait)  # the followers listen first
    await chosen.start()
    # The local executor is one worker in the registry (issue 16); a distributed executor's
    # hosts register themselves.
    heartbeat = None
    if chosen is executor:
        heartbeat = Heartbeat(
            engine, writer, kind="local", slots=executor.slots, free_slots=executor.free_slots
        )
        await heartbeat.start()
    app.state.heartbeat = heartbeat
    hands = await _start_terminals(app, services)
    try:
        # Workflows, followers, GitHub loops, notifications... (codeyard.background).
        await background.begin(app, services)
        yield services
    finally:
        await background.stop()  # before the executor: shutdown is not cancel
        await _stop_terminals(app, hands)
        await chosen.shutdown()
        if heartbeat is not None:
            await heartbeat.stop()
        if fanout is not None:
            await fanout.stop()
        await writer.stop()
        await engine.dispose()


def _mcp_offer(settings: Settings) -> OptionHook:
    """``codeyard.mcp_server.offer``'s hook, built on the first turn: its module imports the
    delegation and run services, which a server starting up does not need (issue 15)."""
    built: list[OptionHook] = []

    def offer(run: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        if not built:
            from codeyard.mcp_server import offer as mcp_offer  # the first turn's, not start-up's

            built.append(mcp_offer.hook(settings))
        return built[0](run, options)

    return offer


def _chosen_executor(settings: Settings, local: LocalExecutor) -> Executor:
    """``executor = temporal``: runs go to worker hosts (issue 16); the local one stays idle."""
    if settings.executor != "temporal":
        return local
    from codeyard.temporal.executor import TemporalExecutor  # imported only when used

    return TemporalExecutor(settings.temporal_address, settings.temporal_namespace)


async def _start_terminals(app: FastAPI, services: Services) -> list[asyncio.Task[None]]:
    """Terminals and previews (issue 18): the terminal manager, the task that closes a run's
    terminals when it ends, and the watcher that reports listeners on leased ports."""
    settings = services.settings
    manager = TerminalManager(
        services.engine,
        services.writer,
        settings.data_dir / "terminals",
        capacity=settings.terminal_scrollback_bytes,
        idle_seconds=settings.terminal_idle_minutes * 60,
    )
    await manager.start()
    app.state.terminals = manager
    app.state.preview = preview_host.PreviewState(domain=settings.preview_domain)

    async def report(run_id: str, type: str, data: dict[str, object]) -> None:
        await services.writer.append(run_id, [parse_event(type, data)])

    watcher = PortWatcher(services.engine, report)
    return [
        asyncio.create_task(terminal_service.follow_runs(services, manager)),
        asyncio.create_task(watcher.run()),
    ]


async def _stop_terminals(app: FastAPI, tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await app.state.terminals.stop()
    await app.state.preview.aclose()


def _install_middleware(app: FastAPI, settings: Settings) -> None:
    """Body limit innermost, then the WebSocket origin check, CORS (only when origins are
    configured), and security headers outermost so every answer carries them."""
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        larger={"/api/voice/transcribe": MAX_AUDIO_BYTES + 64 * 1024},
    )
    app.add_middleware(WebSocketOriginMiddleware, allowed_origins=settings.allowed_origins)
    if settings.allowed_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.allowed_origins,
            allow_credentials=True,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["Retry-After", "Location"],
        )
    # The Host allowlist (DNS rebinding) inside the headers, so its refusals carry them too.
    app.add_middleware(HostAllowlistMiddleware, allowed=allowed_hosts(settings))
    app.add_middleware(SecurityHeadersMiddleware)
    # Outermost: preview origins get the previewed app's headers, not Codeyard's.
    app.add_middleware(preview_host.PreviewHostMiddleware, domain=settings.preview_domain)


#: Every router, in the order their routes are tried, with the first path segments under /api
#: each serves: a router's module loads on the first request under one of them (issue 15,
#: ``codeyard/api/lazy.py``); ``tests/unit/test_lazy_routes.py`` checks the segments.
PUBLIC_ROUTERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("meta:public", ("health",)),
    ("auth_routes:public", ("auth",)),
    ("email_login:public", ("auth",)),  # issue 19: sign-in by emailed code
    ("share:public", ("share",)),
    ("terminals:shared", ("share",)),
    ("notification_actions:public", ("notifications",)),
    ("run_files:public", ("command-output",)),
    ("github:public", ("github",)),  # GitHub's deliveries: the HMAC signature is the permission
    ("github_app:public", ("github",)),  # the App manifest flow's redirects from GitHub
)
AUTHED_ROUTERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("meta:router", ("models", "providers")),
    ("usage:router", ("usage",)),
    ("approvals:router", ("approvals", "policies", "policy-decisions", "policy-sets", "runs")),
    ("projects:router", ("agents", "projects", "repos")),
    ("runs:router", ("runs",)),
    ("run_data:router", ("runs",)),
    ("review:router", ("checkpoints", "projects", "runs")),
    ("land_check:router", ("runs",)),  # issue 14
    ("streams:router", ("events", "runs")),
    ("settings:router", ("settings",)),
    ("disk:router", ("disk-usage", "gc")),
    ("workspace:router", ("repos", "runs")),
    ("env_sets:router", ("env-sets",)),
    ("browse_dirs:router", ("settings",)),
    ("auth_routes:router", ("auth",)),
    ("users:router", ("users",)),
    ("tokens:router", ("tokens",)),
    ("share:router", ("runs",)),
    ("terminals:router", ("runs", "terminals")),
    ("preview:router", ("preview", "runs")),
    ("utility:router", ("runs", "settings", "terminals")),
    ("run_model:router", ("runs",)),
    ("voice:router", ("settings", "voice")),
    ("analytics:router", ("analytics",)),
    ("notifications:router", ("devices", "notifications", "runs")),
    ("audit:router", ("audit-log",)),
    # Seed parity (issue 22):
    ("artifacts:router", ("artifacts", "runs")),
    ("run_files:router", ("runs",)),
    ("run_policy:router", ("runs",)),
    ("run_validate:router", ("runs", "version")),
    ("provider_settings:router", ("settings",)),
    ("project_sync:router", ("projects",)),
    ("code_index:router", ("projects",)),
    ("managed_docs:router", ("projects",)),
    ("checks:router", ("repos", "runs")),
    ("github:router", ("github", "platforms")),
    ("github_app:router", ("github",)),  # issue 21: a GitHub App from a manifest
    ("github_link:router", ("projects",)),  # issue 21: a project's GitHub origin
    ("pull_requests:router", ("projects", "runs")),
    ("hooks:router", ("hooks", "runs")),
    ("policy_members:router", ("policy-sets", "settings")),
    ("auth_sessions:router", ("auth",)),
    ("git_identity:router", ("me",)),  # issue 19
    ("profile:router", ("me", "users")),  # issue 19
    ("workflows:router", ("workflows",)),  # issue 20
    # Tickets, reviews and work queues (issue 19):
    ("tickets:router", ("projects",)),
    ("ticket_work:router", ("projects", "runs")),
    ("queues:router", ("projects",)),
    ("plans:router", ("projects",)),
    ("discovery:router", ("projects",)),
    ("ticket_events:router", ("events",)),
    ("workers:router", ("workers",)),  # issue 16
    ("workspaces:router", ("workspaces",)),  # issue 22
)
#: WebSockets authenticate in their handlers (a browser cannot send headers on them).
WS_ROUTERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("streams:ws_router", ("ws",)),
    ("terminal_ws:ws_router", ("share", "terminal", "terminals")),
    ("preview:ws_router", ("preview",)),
)


def _routers() -> list[lazy.LazyRouter]:
    """The routers of the tables above; run creation is rate limited on top of authentication."""
    authed = (Depends(require_principal),)
    limited = (*authed, Depends(limit_run_creation))

    def spec(target: str, segments: tuple[str, ...], deps: tuple[Any, ...] = ()) -> lazy.LazyRouter:
        return lazy.LazyRouter(f"codeyard.api.{target}", segments, deps)

    return [
        *(spec(t, s) for t, s in PUBLIC_ROUTERS),
        *(spec(t, s, limited if t == "runs:router" else authed) for t, s in AUTHED_ROUTERS),
        *(spec(t, s) for t, s in WS_ROUTERS),
        # Public by design: the page and Swagger UI's assets (paths spelled out in full).
        lazy.LazyRouter("codeyard.api.docs:router", ("docs",), prefix=""),
    ]


def create_app(
    settings: Settings | None = None,
    announce: Callable[[str], None] | None = None,
    background_after: float | None = None,
    freeze_start_up: bool = False,
) -> FastAPI:
    """The app; ``announce`` prints start-up notices meant for the operator (the setup code).

    ``background_after``: the background features (``codeyard.background``) start after the
    first answer, or that many seconds after start-up (``codeyard serve``); by default they
    start in the lifespan, before any request. ``freeze_start_up``: once the routers and the
    background features are loaded, what start-up made is frozen out of the garbage
    collector's full collections (``codeyard.gc_freeze``; the server's own process only).
    """
    settings = settings or Settings()
    background = Background(background_after)

    mcp = mcp_mount.McpMount()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with _running(app, settings, announce, background), mcp.running():
            # Routers not asked for yet load in the background once the server is up.
            warm = asyncio.create_task(lazy.warm_up(app, after=lazy.WARM_AFTER_SECONDS))
            after = [warm]
            if freeze_start_up:
                freeze = gc_freeze.freeze_after(warm, background.started)
                after.append(asyncio.create_task(freeze, name="codeyard-gc-freeze"))
            try:
                yield
            finally:
                for task in after:
                    task.cancel()
                await asyncio.gather(*after, return_exceptions=True)

    app = FastAPI(
        title="Codeyard",
        version=__version__,
        lifespan=lifespan,
        openapi_url="/api/openapi.json",
        docs_url=None,  # served by codeyard.api.docs with local assets
        redoc_url=None,
    )
    app.state.background = background
    problems.install(app)
    _install_middleware(app, settings)
    app.add_middleware(AnsweredMiddleware, background=background)  # outermost
    app.state.run_rate = SlidingWindow(settings.run_create_per_minute)
    lazy.include(app, _routers())
    lazy.install(app)  # the OpenAPI schema loads every router first
    # MCP over streamable HTTP (issue 22): authenticated by the endpoint itself, per tool scopes.
    app.router.routes.append(Route(mcp_mount.PATH, mcp, include_in_schema=False))
    webui.install(app)  # the UI answers what no route matches
    route_index.install(app)  # a request tries only the routes its path can reach
    return app
