"""``codeyard serve`` starts its background features after the first answer (issue 15).

Workflows, followers, GitHub loops, notifications and the rest (``codeyard.background``) are
imported and started once the server has answered a request, or a moment after start-up when
none comes; a route that needs one waits for them instead of failing. The real app on SQLite,
over httpx's ASGI transport.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from codeyard.app import create_app
from codeyard.auth.principal import ADMIN
from codeyard.config import Settings
from codeyard.services import runs as run_service
from codeyard.store import runs as run_store
from tests.conftest import TOKEN

pytestmark = pytest.mark.anyio


@asynccontextmanager
async def serving(tmp_path: Path, after: float) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    app = create_app(
        Settings(data_dir=tmp_path / "data", admin_token=TOKEN), background_after=after
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://localhost", headers=headers
        ) as client:
            yield app, client


async def started(app: Any, within: float) -> bool:
    """Whether the features run within ``within`` seconds (without asking them to start)."""
    for _ in range(int(within / 0.02)):
        if hasattr(app.state, "workflows") and hasattr(app.state, "subscribers"):
            return True
        await asyncio.sleep(0.02)
    return False


async def test_they_start_after_the_first_answer_not_before(tmp_path: Path) -> None:
    async with serving(tmp_path, after=600) as (app, client):
        await asyncio.sleep(0.1)
        assert not await started(app, 0.1)  # no request yet: nothing imported or started
        health = await asyncio.wait_for(client.get("/api/health"), 30)
        assert health.status_code == 200
        assert await started(app, 30)
        assert app.state.leadership.is_leader  # SQLite: the singletons run here


async def test_they_start_on_their_own_when_no_request_comes(tmp_path: Path) -> None:
    async with serving(tmp_path, after=0.2) as (app, _client):
        assert await started(app, 30)


async def test_a_route_that_needs_them_starts_them_and_waits(tmp_path: Path) -> None:
    async with serving(tmp_path, after=600) as (app, client):
        key = await asyncio.wait_for(client.get("/api/notifications/vapid-key"), 30)
        assert key.status_code == 200 and key.json()["public_key"]
        assert app.state.subscribers.notifications.public_key == key.json()["public_key"]


async def test_no_run_is_taken_before_the_followers_listen(tmp_path: Path, git_repo: Path) -> None:
    """A turn that ended before the after-turn checks, tickets and pull-request pushes listen
    would go unseen, so the executor holds its work until the features have started. The run
    is made through the run service (no HTTP request, which would start them itself)."""
    async with serving(tmp_path, after=600) as (app, _client):
        svc = app.state.services
        scenario = {"steps": [{"say": "done"}]}
        body = {
            "prompt": "Hi",
            "repo_path": str(git_repo),
            "provider": "script",
            "agent_options": {"scenario": scenario},
        }
        run = await run_service.create(svc, body, ADMIN)
        await asyncio.sleep(1.0)
        async with svc.engine.connect() as conn:
            row = await run_store.get(conn, run["id"])
        assert row is not None and row["status"] == "queued"
        assert not app.state.background.started.is_set()

        await asyncio.wait_for(app.state.background.ready(), 30)
        for _ in range(1500):
            async with svc.engine.connect() as conn:
                row = await run_store.get(conn, run["id"])
            if row is not None and row["status"] == "review":
                break
            await asyncio.sleep(0.02)
        assert row is not None and row["status"] == "review"
