"""A worker host's own writes for a run let other runs' agent output pass (PostgreSQL, issue 16).

While another process holds the job-order lock (``store.event_sql.JOB_ORDER_LOCK``), a job waits
in its writer's held lane, and only appends to other runs pass it, and only when every held
job is fenced on one run's attempt: an unfenced job could write to any run, so everything
behind it waits. A worker host writes for a run outside the run's attempts too: the placement,
the take-over of a run whose host was lost, the take of the new attempt, the dropping of the
run's finished process records. Each is fenced on the attempt the host found the run on
(``HostRuntime.place`` and ``drive``), so a host's other runs keep streaming meanwhile; and the
host's ``workers`` heartbeat, which writes to no run, is fenced on none (``fencing.NO_RUN``).

A real ``HostRuntime`` (its own thread, engine and writer, as in ``codeyard worker``) on a
fresh PostgreSQL database; the lock is held from connections of the test. The run is a draft,
so the drive's take finds it not queued and drives nothing after it: the jobs up to that point
and the one after it are the real ones. The whole drive on worker processes is
``test_temporal_scale_out.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard.agents.process import boot_id
from codeyard.config import Settings
from codeyard.domain import events as ev
from codeyard.domain.events import utc_now
from codeyard.store import processes, runs
from codeyard.store import workers as worker_rows
from codeyard.store.event_sql import JOB_ORDER_LOCK
from codeyard.store.writer import Tx
from codeyard.temporal.contracts import DriveInput
from codeyard.temporal.host import HostConfig, HostRuntime
from codeyard.testing.postgres import PostgresCluster
from codeyard.workers.registry import Heartbeat
from tests.conftest import TOKEN, Api, running_api

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

_WAITING = (
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    " AND classid::bigint = :hi AND objid::bigint = :lo AND objsubid = 1"
)


async def _until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    try:
        with anyio.fail_after(30):
            while not await check():
                await asyncio.sleep(0.02)
    except TimeoutError:
        pytest.fail(f"not within 30 s: {what}")


class JobLock:
    """The job-order lock, held from the test's own connections.

    ``pass_on`` lets the job waiting for it in a writer's held lane commit and has the lock
    held again before that writer's next job tries it: a new holder queues for the lock behind
    the waiting lane (PostgreSQL grants a lock to its waiters in the order they came, at the
    release), then the current holder lets go."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._release: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    async def waiting(self) -> int:
        """Connections waiting for the job-order lock."""
        keys = {"hi": JOB_ORDER_LOCK >> 32, "lo": JOB_ORDER_LOCK & 0xFFFF_FFFF}
        async with self.engine.connect() as conn:
            return int((await conn.execute(text(_WAITING), keys)).scalar_one())

    def _queue(self) -> tuple[asyncio.Event, asyncio.Event, asyncio.Task[None]]:
        release, holding = asyncio.Event(), asyncio.Event()

        async def hold() -> None:
            async with self.engine.connect() as conn, conn.begin():
                await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": JOB_ORDER_LOCK})
                holding.set()
                await release.wait()

        return release, holding, asyncio.create_task(hold())

    async def hold(self) -> None:
        self._release, holding, self._task = self._queue()
        await asyncio.wait_for(holding.wait(), 10)

    async def pass_on(self) -> None:
        await _until(lambda: self._waiters(1), "a writer waits for the lock")
        before = await self.waiting()
        release, holding, task = self._queue()
        await _until(lambda: self._waiters(before + 1), "the next holder queued behind it")
        await self.let_go()
        self._release, self._task = release, task
        await asyncio.wait_for(holding.wait(), 10)

    async def _waiters(self, count: int) -> bool:
        return await self.waiting() >= count

    async def let_go(self) -> None:
        if self._release is not None and self._task is not None:
            self._release.set()
            await asyncio.wait_for(self._task, 10)
        self._release = self._task = None


@contextlib.asynccontextmanager
async def _host(tmp_path: Path, database_url: str) -> AsyncIterator[HostRuntime]:
    config = HostConfig(
        host="h1",
        database_url=database_url,
        worktree_root=tmp_path / "h1" / "worktrees",
        logs_root=tmp_path / "h1" / "logs",
        secrets_key=tmp_path / "secret.key",
        shared_remote=tmp_path / "shared.git",
    )
    runtime = HostRuntime(config)
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


async def _passes(runtime: HostRuntime, run_id: str, passed: int) -> None:
    """Append to ``run_id`` through the host's writer until an append passed a held job for
    the ``passed``-th time; each append must commit within 20 s (an unfenced job held would
    keep it waiting until the lock is free)."""
    with anyio.fail_after(60):
        while runtime.writer.passed < passed:
            event = ev.ErrorEvent(message=f"agent output {passed}")
            await asyncio.wait_for(runtime.call(runtime.writer.append(run_id, [event])), 20)
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def _cluster(
    pg_cluster: PostgresCluster, tmp_path: Path, repo: Path, count: int
) -> AsyncIterator[tuple[Api, list[str], HostRuntime]]:
    """An API on a fresh PostgreSQL database with ``count`` draft runs, and a host on it."""
    database_url = pg_cluster.create_database()
    settings = Settings(data_dir=tmp_path / "api", database_url=database_url, admin_token=TOKEN)
    async with running_api(settings) as api:
        ids = []
        for _ in range(count):
            body = {"prompt": "p", "repo_path": str(repo), "provider": "script", "draft": True}
            resp = await api.post("/api/runs", json=body)
            assert resp.status_code == 201, resp.text
            ids.append(str(resp.json()["id"]))
        async with _host(tmp_path, database_url) as runtime:
            yield api, ids, runtime


async def test_a_hosts_placement_take_over_take_and_forget_let_other_runs_appends_pass(
    pg_cluster: PostgresCluster, tmp_path: Path, git_repo: Path
) -> None:
    async with _cluster(pg_cluster, tmp_path, git_repo, 2) as (api, (x, y), runtime):
        gone_group = 2**22 + 7  # above any pid: a group the run started that is gone

        async def record(tx: Tx) -> None:
            await processes.add(tx, x, gone_group, 1, boot_id(), "agent")

        await api.services.writer.run(record)
        engine = api.services.engine
        lock = JobLock(engine)
        await lock.hold()
        try:
            placing = runtime.call(runtime.place(x, ["h1"]))
            await _passes(runtime, y, 1)  # y's output passes x's placement
            await lock.pass_on()
            assert await asyncio.wait_for(placing, 10) == "h1"
            driving = runtime.call(runtime.drive(DriveInput(x, 1, lost_host="h0")))
            await _passes(runtime, y, 2)  # ... the take-over of x from the lost host h0
            await lock.pass_on()
            await _passes(runtime, y, 3)  # ... the take of x's new attempt
            await lock.pass_on()
            await _passes(runtime, y, 4)  # ... the dropping of x's process records
            assert not driving.done()
        finally:
            await lock.let_go()
        result = await asyncio.wait_for(driving, 10)
        assert runtime.writer.reordered == 0
        assert (result.host, result.status) == ("h1", "draft")
        async with engine.connect() as conn:
            row: dict[str, Any] = await runs.get(conn, x)
            assert await processes.of_run(conn, x) == []
        assert row["worker_host"] == "h1" and row["attempt"] == 0


async def test_a_workers_heartbeat_lets_the_runs_appends_pass(
    pg_cluster: PostgresCluster, tmp_path: Path, git_repo: Path
) -> None:
    """The ``workers`` row's heartbeat (every 10 s on every worker) writes to no run: its jobs
    are fenced on none (``fencing.NO_RUN``), and the runs' output passes them."""
    async with _cluster(pg_cluster, tmp_path, git_repo, 1) as (api, (y,), runtime):
        beat = Heartbeat(
            runtime.engine,
            runtime.writer,
            kind="temporal",
            slots=2,
            free_slots=lambda: 1,
            host="hb",
        )
        now = utc_now()
        row: dict[str, Any] = {
            "id": beat.worker_id,
            "host": "hb",
            "kind": "temporal",
            "capabilities": {},
            "slots": 2,
            "free_slots": 2,
            "started_at": now,
            "heartbeat_at": now,
        }
        lock = JobLock(api.services.engine)
        await lock.hold()
        try:
            beating = runtime.call(beat.beat_once(row))
            await _passes(runtime, y, 1)  # y's output passes the beat
            await lock.pass_on()
            await _passes(runtime, y, 2)  # ... and the row written again (it was not there)
            assert not beating.done()
        finally:
            await lock.let_go()
        await asyncio.wait_for(beating, 10)
        async with api.services.engine.connect() as conn:
            rows = {r["id"]: r for r in await worker_rows.list_all(conn)}
        assert rows[beat.worker_id]["free_slots"] == 1
