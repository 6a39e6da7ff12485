"""Two API servers on one PostgreSQL (issue 16): events written through B stream live on A.

Both apps run in this process with their own hub, writer and executor, sharing only the
database, as two hosts would. The subscriber on A is the stream every SSE and WebSocket client
reads (``events.stream.follow``, replay then live). Both servers append to the same run at the
same time, so the run's numbering is also checked across writer processes.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from codeyard.config import Settings
from codeyard.domain import events as ev
from codeyard.domain.events import StoredEvent
from codeyard.events.hub import EventFilter
from codeyard.events.stream import follow
from codeyard.testing.postgres import PostgresCluster
from tests.conftest import TOKEN, Api, running_api

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

BATCHES = 20
PER_BATCH = 5


def _settings(tmp_path: Path, name: str, url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / name, database_url=url, admin_token=TOKEN, bash_timeout_seconds=30
    )


async def _append(api: Api, run_id: str, who: str) -> None:
    for b in range(BATCHES):
        batch = [ev.ErrorEvent(message=f"{who} {b}.{k}") for k in range(PER_BATCH)]
        await api.services.writer.append(run_id, batch)
        await asyncio.sleep(0)


async def _collect(
    api: Api, run_id: str, after: int, want: int, started: asyncio.Event
) -> list[StoredEvent]:
    got: list[StoredEvent] = []
    flt = EventFilter(run_id=run_id, types=frozenset({"error"}))
    stream = follow(api.services.engine, api.services.hub, flt, after, on_replay_done=started.set)
    async for batch in stream:
        got.extend(batch)
        if len(got) >= want:
            break
    await stream.aclose()
    return got


async def test_events_written_through_b_stream_on_a(
    pg_cluster: PostgresCluster, tmp_path: Path, git_repo: Path
) -> None:
    url = pg_cluster.create_database()
    body = {"prompt": "fan-out", "repo_path": str(git_repo), "provider": "script", "draft": True}
    want = 2 * BATCHES * PER_BATCH
    async with (
        running_api(_settings(tmp_path, "a", url)) as a,
        running_api(_settings(tmp_path, "b", url)) as b,
    ):
        resp = await a.post("/api/runs", json=body)
        assert resp.status_code == 201, resp.text
        run: dict[str, Any] = resp.json()
        run_id = run["id"]
        assert (await b.get(f"/api/runs/{run_id}")).status_code == 200  # one database

        started = asyncio.Event()
        reader = asyncio.create_task(_collect(a, run_id, 0, want, started))
        try:
            await asyncio.wait_for(started.wait(), 10)
            await asyncio.wait_for(
                asyncio.gather(_append(b, run_id, "b"), _append(a, run_id, "a")), 60
            )
            got = await asyncio.wait_for(reader, 30)
        finally:
            reader.cancel()
        # B's events reached A through NOTIFY, not through A's own writer.
        assert a.app.state.fanout.received >= BATCHES * PER_BATCH

    texts = [e.data["message"] for e in got]
    assert len(got) == want and len(set(texts)) == want  # nothing lost, nothing twice
    ids = [e.id for e in got]
    assert ids == sorted(ids) and len(set(ids)) == want  # in order
    seqs = [e.seq for e in got]
    assert seqs == list(range(seqs[0], seqs[0] + want))  # one numbering across both writers
    for who in ("a", "b"):  # each writer's own order kept
        mine = [t for t in texts if t.startswith(who + " ")]
        assert mine == [f"{who} {b}.{k}" for b in range(BATCHES) for k in range(PER_BATCH)]


async def test_a_lost_listen_connection_loses_no_event(
    pg_cluster: PostgresCluster, tmp_path: Path, git_repo: Path
) -> None:
    """The LISTEN connection of A is killed on the server: A listens again and its stream
    replays what was announced meanwhile, so B's events still arrive once each, in order."""
    url = pg_cluster.create_database()
    body = {"prompt": "lost", "repo_path": str(git_repo), "provider": "script", "draft": True}
    async with (
        running_api(_settings(tmp_path, "a", url)) as a,
        running_api(_settings(tmp_path, "b", url)) as b,
    ):
        resp = await a.post("/api/runs", json=body)
        assert resp.status_code == 201, resp.text
        run_id = resp.json()["id"]
        started = asyncio.Event()
        reader = asyncio.create_task(_collect(a, run_id, 0, 20, started))
        try:
            await asyncio.wait_for(started.wait(), 10)
            fanout = a.app.state.fanout
            listening = await fanout._conn.get_raw_connection()
            pid = listening.driver_connection.get_server_pid()
            async with b.services.engine.connect() as conn:
                await conn.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
            for k in range(10):  # while A is listening again, or not yet
                await b.services.writer.append(run_id, [ev.ErrorEvent(message=f"x {k}")])
            deadline = asyncio.get_running_loop().time() + 30
            while not fanout.reconnects and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)
            assert fanout.reconnects == 1
            for k in range(10, 20):
                await b.services.writer.append(run_id, [ev.ErrorEvent(message=f"x {k}")])
            got = await asyncio.wait_for(reader, 30)
        finally:
            reader.cancel()
    assert [e.data["message"] for e in got] == [f"x {k}" for k in range(20)]
