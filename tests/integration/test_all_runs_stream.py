"""The stream over all runs across two writer processes on one PostgreSQL (issue 16).

A stream over every run sends ids in ascending order and skips ids it has passed. Ids come
from a sequence, so a batch of server B that drew a smaller id but commits after server A's
batch would be skipped for ever (live, and on a reconnect with ``Last-Event-ID``). Writers
draw their ids last, under a lock held until they commit (``store.event_sql.COMMIT_ORDER_LOCK``):
one test holds B's batch between drawing its id and committing, has A append meanwhile, and
expects A's commit to wait and the stream to show both events; the other holds B's batch in a
job (before it draws) and expects A to commit at once, with the larger id going to B. Both apps
run in this process, sharing only the database.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import anyio
import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from codeyard.config import Settings
from codeyard.domain import events as ev
from codeyard.domain.events import StoredEvent
from codeyard.events.hub import EventFilter
from codeyard.events.stream import follow
from codeyard.store import schema
from codeyard.store.writer import Tx
from codeyard.testing.postgres import PostgresCluster
from tests.conftest import TOKEN, Api, running_api

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


_ROW_LOCK_WAITS = text(
    "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity s ON s.pid = l.pid"
    " WHERE NOT l.granted AND l.locktype IN ('transactionid', 'tuple')"
    " AND s.datname = current_database()"
)


async def _row_lock_awaited(api: Api) -> None:
    """Until a transaction on this database waits for a row another one holds (a fixed half
    second was not always enough for the other batch to get there on a loaded machine)."""
    with anyio.fail_after(30):
        while True:
            async with api.services.engine.connect() as conn:
                if (await conn.execute(_ROW_LOCK_WAITS)).scalar_one():
                    return
            await asyncio.sleep(0.02)


def _settings(tmp_path: Path, name: str, url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / name, database_url=url, admin_token=TOKEN, bash_timeout_seconds=30
    )


async def _draft(api: Api, repo: Path) -> str:
    body = {"prompt": "all runs", "repo_path": str(repo), "provider": "script", "draft": True}
    resp = await api.post("/api/runs", json=body)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


async def _collect(api: Api, after: int, want: int, ready: asyncio.Event) -> list[StoredEvent]:
    got: list[StoredEvent] = []
    flt = EventFilter(types=frozenset({"error"}))  # every run
    stream = follow(api.services.engine, api.services.hub, flt, after, on_replay_done=ready.set)
    async for batch in stream:
        got.extend(batch)
        if len(got) >= want:
            break
    await stream.aclose()
    return got


async def test_a_late_commit_of_a_smaller_id_is_not_skipped(
    pg_cluster: PostgresCluster, tmp_path: Path, git_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = pg_cluster.create_database()
    async with (
        running_api(_settings(tmp_path, "a", url)) as a,
        running_api(_settings(tmp_path, "b", url)) as b,
    ):
        run_b, run_a = await _draft(a, git_repo), await _draft(a, git_repo)
        ready, inside, release = asyncio.Event(), asyncio.Event(), asyncio.Event()
        reader = asyncio.create_task(_collect(a, 0, 2, ready))
        writer_b = b.services.writer
        insert = writer_b._insert_numbered

        async def held(conn: AsyncConnection, staged: list[StoredEvent]) -> None:
            await insert(conn, staged)
            inside.set()  # B's id is drawn and its event inserted: its commit is held back
            await asyncio.wait_for(release.wait(), 60)

        monkeypatch.setattr(writer_b, "_insert_numbered", held)
        tasks: list[asyncio.Task[list[StoredEvent]]] = []
        try:
            await asyncio.wait_for(ready.wait(), 30)
            first = [ev.ErrorEvent(message="b, drawn first")]
            tasks.append(asyncio.create_task(writer_b.append(run_b, first)))
            await asyncio.wait_for(inside.wait(), 30)
            late = [ev.ErrorEvent(message="a, drawn second")]
            tasks.append(asyncio.create_task(a.services.writer.append(run_a, late)))
            await asyncio.sleep(0.5)
            assert not tasks[1].done()  # A's batch waits for B's to commit
            release.set()
            (b_event,), (a_event,) = await asyncio.wait_for(asyncio.gather(*tasks), 30)
            got = await asyncio.wait_for(reader, 30)
        finally:
            release.set()
            reader.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(reader, *tasks, return_exceptions=True)
        assert b_event.id < a_event.id
        assert [e.data["message"] for e in got] == ["b, drawn first", "a, drawn second"]
        # A client reconnecting after the first event still gets the second, once.
        again = await asyncio.wait_for(_collect(a, got[0].id, 1, asyncio.Event()), 30)
        assert [e.id for e in again] == [got[1].id]


async def test_a_long_job_does_not_hold_other_writers(
    pg_cluster: PostgresCluster, tmp_path: Path, git_repo: Path
) -> None:
    """B's job emitted an event and is still running: its batch has drawn no id yet and holds
    no lock A needs, so A commits at once; B's event, committed later, gets the larger id."""
    url = pg_cluster.create_database()
    async with (
        running_api(_settings(tmp_path, "a", url)) as a,
        running_api(_settings(tmp_path, "b", url)) as b,
    ):
        run_b, run_a = await _draft(a, git_repo), await _draft(a, git_repo)
        ready, inside, release = asyncio.Event(), asyncio.Event(), asyncio.Event()
        reader = asyncio.create_task(_collect(a, 0, 2, ready))
        tasks: list[asyncio.Task[object]] = []
        try:
            await asyncio.wait_for(ready.wait(), 30)

            async def slow(tx: Tx) -> StoredEvent:  # B: emitted, its job not done
                (stored,) = await tx.emit(run_b, [ev.ErrorEvent(message="b, emitted first")])
                inside.set()
                await asyncio.wait_for(release.wait(), 60)
                return stored

            tasks.append(asyncio.create_task(b.services.writer.run(slow)))
            await asyncio.wait_for(inside.wait(), 30)
            late = [ev.ErrorEvent(message="a, emitted second")]
            (a_event,) = await asyncio.wait_for(a.services.writer.append(run_a, late), 30)
            assert not tasks[0].done()
            release.set()
            b_event = await asyncio.wait_for(tasks[0], 30)
            got = await asyncio.wait_for(reader, 30)
        finally:
            release.set()
            reader.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(reader, *tasks, return_exceptions=True)
        assert isinstance(b_event, StoredEvent)
        assert a_event.id < b_event.id  # the id is drawn when the batch commits
        assert [e.data["message"] for e in got] == ["a, emitted second", "b, emitted first"]
        assert [e.id for e in got] == [a_event.id, b_event.id]


async def test_jobs_of_two_processes_run_one_batch_at_a_time(
    pg_cluster: PostgresCluster, tmp_path: Path, git_repo: Path
) -> None:
    """Jobs read rows and write what they decided: a job on A waits for B's batch with a job
    to commit (``store.event_sql.JOB_ORDER_LOCK``), as if one writer ran both."""
    url = pg_cluster.create_database()
    async with (
        running_api(_settings(tmp_path, "a", url)) as a,
        running_api(_settings(tmp_path, "b", url)) as b,
    ):
        run_b, run_a = await _draft(a, git_repo), await _draft(a, git_repo)
        inside, release = asyncio.Event(), asyncio.Event()

        async def slow(tx: Tx) -> StoredEvent:
            (stored,) = await tx.emit(run_b, [ev.ErrorEvent(message="b")])
            inside.set()
            await asyncio.wait_for(release.wait(), 60)
            return stored

        async def quick(tx: Tx) -> StoredEvent:
            return (await tx.emit(run_a, [ev.ErrorEvent(message="a")]))[0]

        tasks: list[asyncio.Task[StoredEvent]] = []
        try:
            tasks.append(asyncio.create_task(b.services.writer.run(slow)))
            await asyncio.wait_for(inside.wait(), 30)
            tasks.append(asyncio.create_task(a.services.writer.run(quick)))
            await asyncio.sleep(0.5)
            assert not tasks[1].done()  # A's job waits for B's batch
            release.set()
            b_event, a_event = await asyncio.wait_for(asyncio.gather(*tasks), 30)
        finally:
            release.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        assert b_event.id < a_event.id


async def test_a_batch_that_deadlocks_with_another_process_runs_again(
    pg_cluster: PostgresCluster,
    tmp_path: Path,
    git_repo: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A job on A holds run X's row and then wants run Y's; B's batch of appends locked Y (its
    rows are locked in id order) and waits for X. PostgreSQL fails one of the two; that batch is
    run again and both writes land."""
    url = pg_cluster.create_database()
    async with (
        running_api(_settings(tmp_path, "a", url)) as a,
        running_api(_settings(tmp_path, "b", url)) as b,
    ):
        y, x = sorted([await _draft(a, git_repo), await _draft(a, git_repo)])
        holding = asyncio.Event()

        async def job(tx: Tx) -> None:
            runs = schema.runs
            await tx.conn.execute(update(runs).where(runs.c.id == x).values(title="x"))
            holding.set()
            await _row_lock_awaited(a)  # B's batch locked Y, and waits for X
            await tx.conn.execute(update(runs).where(runs.c.id == y).values(title="y"))

        caplog.set_level(logging.INFO, logger="codeyard.store.writer")
        on_a = asyncio.create_task(a.services.writer.run(job))
        await asyncio.wait_for(holding.wait(), 30)
        appends = [
            b.services.writer.append(run_id, [ev.ErrorEvent(message=run_id)]) for run_id in (y, x)
        ]
        await asyncio.wait_for(asyncio.gather(on_a, *appends), 30)
        assert "deadlocked; running it again" in caplog.text
        async with a.services.engine.connect() as conn:
            rows = (await conn.execute(select(schema.runs.c.id, schema.runs.c.title))).all()
            titles = {r.id: r.title for r in rows}
            messages = (
                await conn.execute(
                    select(schema.events.c.run_id).where(schema.events.c.type == "error")
                )
            ).scalars()
            assert sorted(messages) == [y, x]
        assert titles[x] == "x" and titles[y] == "y"
