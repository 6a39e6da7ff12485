"""The local executor's take of a queued run (issue 15): the new attempt, and ``preparing`` for
a run without worktrees, in one writer job (SQLite and PostgreSQL); its drive starts from that
row instead of reading the run and writing the status again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from codeyard.domain.events import StoredEvent, utc_now
from codeyard.executor.local import take_run
from codeyard.store import events, projects, runs
from codeyard.store.db import create_engine
from codeyard.store.writer import Tx, Writer
from tests.support.writer_runs import PROJECT, run_row

pytestmark = pytest.mark.anyio


@pytest.fixture
async def writer(database_url: str) -> AsyncIterator[Writer]:
    engine = create_engine(database_url)
    published: list[StoredEvent] = []
    writer = Writer(engine, published.extend)
    await writer.start()

    async def add(tx: Tx) -> None:
        now = utc_now()
        project = {"id": PROJECT, "name": "p", "slug": "p", "created_at": now, "updated_at": now}
        await projects.insert_project(tx, project)
        await runs.insert(tx, {**run_row("run_new", 1), "status": "queued"})
        worktrees = {"repo_x": "/tmp/nowhere"}
        await runs.insert(tx, {**run_row("run_old", 2), "status": "queued", "worktrees": worktrees})
        await runs.insert(tx, {**run_row("run_draft", 3), "status": "draft"})

    await writer.run(add)
    try:
        yield writer
    finally:
        await asyncio.wait_for(writer.stop(), 10)
        await engine.dispose()


async def _statuses(writer: Writer, run_id: str) -> list[str]:
    async with writer.engine.connect() as conn:
        found = await events.read_all(conn, run_id, frozenset({"run.status"}))
    return [e.data["to"] for e in found]


async def test_a_new_run_is_taken_and_preparing_in_one_job(writer: Writer) -> None:
    taken = await writer.run(lambda tx: take_run(tx, "run_new"))
    assert taken is not None
    attempt, row = taken
    assert attempt == 1 and row["status"] == "preparing" and row["attempt"] == 1
    async with writer.engine.connect() as conn:
        stored: dict[str, Any] = await runs.get(conn, "run_new")
    assert stored["status"] == "preparing" and stored["attempt"] == 1
    assert await _statuses(writer, "run_new") == ["preparing"]
    # Taken once: a second taker finds it no longer queued.
    assert await writer.run(lambda tx: take_run(tx, "run_new")) is None


async def test_a_run_with_worktrees_stays_queued_and_one_not_queued_is_not_taken(
    writer: Writer,
) -> None:
    taken = await writer.run(lambda tx: take_run(tx, "run_old"))
    assert taken is not None and taken[1]["status"] == "queued"  # its turn starts it
    assert await _statuses(writer, "run_old") == []
    assert await writer.run(lambda tx: take_run(tx, "run_draft")) is None
