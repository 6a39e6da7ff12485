"""The workers registry (issue 16): the local executor registers itself; ``GET /api/workers``
lists workers with capabilities and heartbeat health. Real app, SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from codeyard.store import schema
from codeyard.workers import registry
from tests.conftest import Api

pytestmark = pytest.mark.anyio


def test_health_turns_unhealthy_after_three_missed_beats() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    fresh = (now - timedelta(seconds=registry.STALE_AFTER - 1)).isoformat()
    stale = (now - timedelta(seconds=registry.STALE_AFTER + 1)).isoformat()
    assert registry.health(fresh, now) == "healthy"
    assert registry.health(stale, now) == "unhealthy"
    assert registry.health("2026-01-01T11:59:59.000Z", now) == "healthy"


async def test_the_local_executor_is_a_listed_worker(api: Api, git_repo: Path) -> None:
    heartbeat = api.app.state.heartbeat
    assert heartbeat.worker_id  # registers one beat after start-up; here at once:
    await asyncio.wait_for(heartbeat.register(), 60)
    resp = await api.get("/api/workers")
    assert resp.status_code == 200, resp.text
    items = resp.json()["items"]
    assert len(items) == 1
    me = items[0]
    assert me["kind"] == "local" and me["health"] == "healthy"
    assert me["slots"] == api.services.settings.max_concurrent_runs == me["free_slots"]
    providers = me["capabilities"]["providers"]
    assert providers["script"]["available"] is True  # the built-in agent is always there
    assert set(providers) >= {"script", "claude-code", "codex"}

    # A repository cloned here shows as cached after the next registration.
    resp = await api.post("/api/projects", json={"name": "w", "repos": [{"path": str(git_repo)}]})
    assert resp.status_code == 201, resp.text
    caps = await registry.capabilities(api.services.engine)
    assert len(caps["repos_cached"]) == 1

    # A worker whose heartbeat stopped three beats ago is shown unhealthy…
    old = (datetime.now(UTC) - timedelta(seconds=registry.STALE_AFTER + 5)).isoformat()
    await api.services.writer.run(
        lambda tx: tx.conn.execute(
            update(schema.workers).where(schema.workers.c.id == me["id"]).values(heartbeat_at=old)
        )
    )
    stale = (await api.get("/api/workers")).json()["items"][0]
    assert stale["health"] == "unhealthy" and stale["heartbeat_age_seconds"] > registry.STALE_AFTER

    # …and healthy again after its next beat.
    await heartbeat.beat_once(heartbeat.row)
    assert (await api.get("/api/workers")).json()["items"][0]["health"] == "healthy"


async def test_workers_need_a_read_scope(api: Api) -> None:
    resp = await api.client.get("/api/workers", headers={"Authorization": ""})
    assert resp.status_code == 401
