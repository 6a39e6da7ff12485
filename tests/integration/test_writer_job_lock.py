"""Appends do not wait behind a job that waits for the job-order lock (PostgreSQL, issue 16).

A writer process runs its batches one after another, and a batch with jobs holds the
cluster-wide job-order lock (``store.event_sql.JOB_ORDER_LOCK``). While another process holds it,
the job waits in the writer's held lane and the appends that may pass it commit meanwhile:
appends to other runs, written from other attempts than the job's. What may not pass waits
behind it in queue order: appends to the run the job is fenced on, appends written under the
job's own fence, and everything behind a job without a fence (it could write to any run).
Here the lock is held from a connection of the test itself, and the writes go through a writer
of the test's own (the app's background work writes through the app's).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard.config import Settings
from codeyard.domain import events as ev
from codeyard.domain.events import StoredEvent
from codeyard.store import fencing, schema
from codeyard.store.event_sql import JOB_ORDER_LOCK
from codeyard.store.writer import Tx, Writer
from codeyard.testing.postgres import PostgresCluster
from tests.conftest import TOKEN, Api, running_api

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


async def _draft(api: Api, repo: Path) -> str:
    body = {"prompt": "job lock", "repo_path": str(repo), "provider": "script", "draft": True}
    resp = await api.post("/api/runs", json=body)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


@contextlib.asynccontextmanager
async def _job_lock_held(engine: AsyncEngine) -> AsyncIterator[asyncio.Event]:
    """Hold the job-order lock from another connection until the yielded event is set."""
    release = asyncio.Event()
    holding = asyncio.Event()

    async def hold() -> None:
        async with engine.connect() as conn, conn.begin():
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": JOB_ORDER_LOCK})
            holding.set()
            await release.wait()

    task = asyncio.create_task(hold())
    try:
        await asyncio.wait_for(holding.wait(), 10)
        yield release
    finally:
        release.set()
        await asyncio.wait_for(task, 10)


_WAITING = (
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    " AND classid::bigint = :hi AND objid::bigint = :lo AND objsubid = 1"
)


async def _waiting_for_the_lock(engine: AsyncEngine) -> None:
    """Until a connection waits for the job-order lock: the held lane with the job in it (a
    fixed 0.3 s let a loaded machine queue the later writes before the job was held)."""
    keys = {"hi": JOB_ORDER_LOCK >> 32, "lo": JOB_ORDER_LOCK & 0xFFFF_FFFF}
    with anyio.fail_after(30):
        while True:
            async with engine.connect() as conn:
                if (await conn.execute(text(_WAITING), keys)).scalar_one():
                    return
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def _writer(engine: AsyncEngine) -> AsyncIterator[Writer]:
    """A writer of its own (as another process would have): only the test's writes in it."""
    writer = Writer(engine, lambda _events: None)
    await writer.start()
    try:
        yield writer
    finally:
        await writer.stop()


def _as(
    fence: fencing.Fence | None, call: Callable[[], Coroutine[Any, Any, Any]]
) -> asyncio.Task[Any]:
    """Start ``call`` in a task that writes for ``fence`` (as an attempt's tasks do)."""
    token = fencing.current.set(fence)
    try:
        return asyncio.create_task(call())  # the task copies the context
    finally:
        fencing.current.reset(token)


async def _seqs(engine: AsyncEngine, run_id: str) -> list[tuple[int, int, str]]:
    E = schema.events
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(E.c.seq, E.c.id, E.c.data).where(E.c.run_id == run_id).order_by(E.c.seq)
            )
        ).all()
    return [(r.seq, r.id, str(json.loads(r.data).get("message", ""))) for r in rows]


@contextlib.asynccontextmanager
async def _drafts(
    pg_cluster: PostgresCluster, tmp_path: Path, repo: Path, count: int
) -> AsyncIterator[tuple[AsyncEngine, list[str]]]:
    """An API on a fresh PostgreSQL database with ``count`` draft runs: its engine, their ids."""
    settings = Settings(
        data_dir=tmp_path / "a",
        database_url=pg_cluster.create_database(),
        admin_token=TOKEN,
        bash_timeout_seconds=30,
    )
    async with running_api(settings) as api:
        yield api.services.engine, [await _draft(api, repo) for _ in range(count)]


async def test_an_append_to_another_run_passes_a_job_waiting_for_the_lock(
    pg_cluster: PostgresCluster, tmp_path: Path, git_repo: Path
) -> None:
    async with _drafts(pg_cluster, tmp_path, git_repo, 3) as (engine, (x, y, z)):
        fx, fy = fencing.Fence(x, 0), fencing.Fence(y, 0)

        async def job(tx: Tx) -> StoredEvent:
            return await tx.emit_one(x, ev.ErrorEvent(message="job"))

        def append(
            run_id: str, message: str
        ) -> Callable[[], Coroutine[Any, Any, list[StoredEvent]]]:
            return lambda: writer.append(run_id, [ev.ErrorEvent(message=message)])

        async with _writer(engine) as writer, _job_lock_held(engine) as release:
            waiting = _as(fx, lambda: writer.run(job))
            await _waiting_for_the_lock(engine)  # the job is in the held lane
            same_run = _as(fy, append(x, "x, after the job"))  # to the job's run: waits
            same_fence = _as(fx, append(z, "z, under the job's fence"))  # waits
            await asyncio.sleep(0.1)
            behind = _as(fy, append(z, "z, behind a held append"))  # waits
            # Agent output of another run's attempt, queued after all of these: not delayed.
            (passed,) = await asyncio.wait_for(_as(fy, append(y, "y, passes")), 30)
            (unfenced,) = await asyncio.wait_for(_as(None, append(y, "y, unfenced")), 30)
            await asyncio.sleep(0.3)
            assert not any(t.done() for t in (waiting, same_run, same_fence, behind))
            release.set()
            job_event = await asyncio.wait_for(waiting, 30)
            (after_job,) = await asyncio.wait_for(same_run, 30)
            (fenced_z,) = await asyncio.wait_for(same_fence, 30)
            (behind_z,) = await asyncio.wait_for(behind, 30)
        assert passed.id < unfenced.id < job_event.id < after_job.id
        assert job_event.id < fenced_z.id < behind_z.id
        assert [m for _, _, m in await _seqs(engine, x)][-2:] == ["job", "x, after the job"]
        assert [m for _, _, m in await _seqs(engine, y)][-2:] == ["y, passes", "y, unfenced"]
        assert [m for _, _, m in await _seqs(engine, z)][-2:] == [
            "z, under the job's fence",
            "z, behind a held append",
        ]
        assert writer.passed == 2 and writer.reordered == 0


async def test_a_job_without_a_fence_holds_every_later_append(
    pg_cluster: PostgresCluster, tmp_path: Path, git_repo: Path
) -> None:
    """A job written outside any attempt (the API, recovery) may write to any run: nothing
    queued after it passes it; what was queued before it commits at once."""
    async with _drafts(pg_cluster, tmp_path, git_repo, 2) as (engine, (x, y)):

        async def job(tx: Tx) -> StoredEvent:
            return await tx.emit_one(y, ev.ErrorEvent(message="job"))

        async with _writer(engine) as writer, _job_lock_held(engine) as release:
            before = _as(
                fencing.Fence(y, 0), lambda: writer.append(y, [ev.ErrorEvent(message="a")])
            )
            waiting = _as(None, lambda: writer.run(job))
            (first,) = await asyncio.wait_for(before, 30)  # queued before the job: not held
            later = _as(fencing.Fence(x, 0), lambda: writer.append(x, [ev.ErrorEvent(message="b")]))
            await asyncio.sleep(0.5)
            assert not waiting.done() and not later.done()
            release.set()
            job_event = await asyncio.wait_for(waiting, 30)
            (after,) = await asyncio.wait_for(later, 30)
        assert first.id < job_event.id < after.id
        assert [m for _, _, m in await _seqs(engine, y)][-2:] == ["a", "job"]


async def test_a_fenced_job_writing_to_a_run_whose_append_passed_it_is_reported(
    pg_cluster: PostgresCluster,
    tmp_path: Path,
    git_repo: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The limit of the rule: a job fenced on one run's attempt that writes to another run,
    whose own attempt appended meanwhile, lands after that append (the two were submitted by
    different tasks). No job does this today; the writer counts and logs it if one does."""
    async with _drafts(pg_cluster, tmp_path, git_repo, 2) as (engine, (x, y)):

        async def job(tx: Tx) -> StoredEvent:
            return await tx.emit_one(y, ev.ErrorEvent(message="job"))

        caplog.set_level(logging.WARNING, logger="codeyard.store.writer")
        async with _writer(engine) as writer, _job_lock_held(engine) as release:
            waiting = _as(fencing.Fence(x, 0), lambda: writer.run(job))
            await _waiting_for_the_lock(engine)
            passing = _as(
                fencing.Fence(y, 0), lambda: writer.append(y, [ev.ErrorEvent(message="a")])
            )
            (appended,) = await asyncio.wait_for(passing, 30)
            release.set()
            job_event = await asyncio.wait_for(waiting, 30)
        assert appended.id < job_event.id
        assert [m for _, _, m in await _seqs(engine, y)][-2:] == ["a", "job"]
        assert writer.reordered == 1
        assert "after a later append to it had committed" in caplog.text
