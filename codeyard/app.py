"""Builds the FastAPI app: wiring only."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from codeyard import __version__
from codeyard.agents import registry
from codeyard.agents.claude import ClaudeCodeProvider
from codeyard.agents.script import ScriptProvider
from codeyard.api import (
    approvals,
    disk,
    meta,
    problems,
    projects,
    review,
    run_data,
    runs,
    streams,
    usage,
    workspace,
)
from codeyard.api import settings as settings_api
from codeyard.api.auth import require_principal
from codeyard.config import Settings
from codeyard.events.hub import Hub
from codeyard.executor.local import LocalExecutor
from codeyard.services import retention
from codeyard.services import settings as settings_service
from codeyard.services.context import Services
from codeyard.store.db import create_engine, migrate
from codeyard.store.writer import Writer

registry.register(ScriptProvider())
registry.register(ClaudeCodeProvider())


@asynccontextmanager
async def _running(app: FastAPI, settings: Settings) -> AsyncIterator[Services]:
    """Start storage, the writer and the executor; stop them in reverse order."""
    settings.prepare_data_dir()
    app.state.admin_token = settings.ensure_admin_token()
    engine = create_engine(settings.resolved_database_url)
    await migrate(engine)
    hub = Hub()
    writer = Writer(engine, hub.publish, batch_max=settings.event_batch_max)
    await writer.start()
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
    )
    services = Services(settings, engine, writer, hub, executor)
    app.state.services = services
    await executor.start()
    daily_gc = retention.DailyGc(services)
    daily_gc.start()
    try:
        yield services
    finally:
        await daily_gc.stop()
        await executor.stop()
        await writer.stop()
        await engine.dispose()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with _running(app, settings):
            yield

    app = FastAPI(
        title="Codeyard",
        version=__version__,
        lifespan=lifespan,
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
    )
    problems.install(app)
    app.include_router(meta.public, prefix="/api")
    authed = [Depends(require_principal)]
    for router in (
        meta.router,
        usage.router,
        approvals.router,
        projects.router,
        runs.router,
        run_data.router,
        review.router,
        streams.router,
        settings_api.router,
        disk.router,
        workspace.router,
    ):
        app.include_router(router, prefix="/api", dependencies=authed)
    app.include_router(streams.ws_router, prefix="/api")
    return app
