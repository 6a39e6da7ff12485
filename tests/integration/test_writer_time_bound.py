"""A writer batch is bounded in time as well as in items (SQLite and PostgreSQL, issue 15).

Under load a job's statements wait for the event loop between their hops, and a batch that took
every job waiting held all their events uncommitted until the last one ran (up to a second
while hundreds of runs started), then woke every caller at once. A batch now takes no further
item once its jobs have run ``batch_seconds``: the items it left start the next batch, ahead of
anything queued since, so queue order, numbering and the hand-off after commit are unchanged.
Jobs here wait on the loop (``asyncio.sleep``) as the slow ones do; the rows are read back
through the engine after the writer returned.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import select

from codeyard.domain import events as ev
from codeyard.domain.events import StoredEvent
from codeyard.store import schema
from codeyard.store.db import create_engine
from codeyard.store.writer import Tx, Writer
from tests.support.writer_runs import add_runs

pytestmark = pytest.mark.anyio

#: Each job waits this long on the loop; the bound lets about two run per batch.
JOB_SECONDS = 0.04
BOUND_SECONDS = 0.06


@pytest.fixture
async def writer(database_url: str) -> AsyncIterator[tuple[Writer, list[StoredEvent]]]:
    engine = create_engine(database_url)
    published: list[StoredEvent] = []
    w = Writer(engine, published.extend, batch_seconds=BOUND_SECONDS)
    await w.start()
    try:
        await add_runs(w, "run_a")
        yield w, published
    finally:
        await asyncio.wait_for(w.stop(), 10)
        await engine.dispose()


async def _stored(w: Writer) -> list[tuple[int, int, str]]:
    """(id, seq, message) of run_a's events, by seq."""
    E = schema.events
    async with w.engine.connect() as conn:
        stmt = select(E.c.id, E.c.seq, E.c.data).where(E.c.run_id == "run_a").order_by(E.c.seq)
        rows = (await conn.execute(stmt)).all()
    out = []
    for r in rows:
        data = json.loads(r.data) if isinstance(r.data, str) else r.data
        out.append((r.id, r.seq, str(data["message"])))
    return out


def _slow_job(name: str, started: dict[str, float]) -> Any:
    async def job(tx: Tx) -> str:
        started[name] = time.monotonic()
        await asyncio.sleep(JOB_SECONDS)  # a job whose statements wait for a busy loop
        await tx.emit("run_a", [ev.ErrorEvent(message=name)])
        return name

    return job


async def test_a_batch_stops_taking_jobs_at_its_time_bound_and_keeps_queue_order(
    writer: tuple[Writer, list[StoredEvent]],
) -> None:
    w, published = writer
    batches, before = w.batches, len(published)
    started: dict[str, float] = {}
    returned: dict[str, float] = {}
    names: list[str] = []

    async def call(k: int) -> None:
        if k % 2:
            name = f"append {k}"
            await w.append("run_a", [ev.ErrorEvent(message=name)])
        else:
            name = f"job {k}"
            assert await w.run(_slow_job(name, started)) == name
        returned[name] = time.monotonic()

    calls = []
    for k in range(12):  # all queued before the writer takes its next batch
        names.append(f"append {k}" if k % 2 else f"job {k}")
        calls.append(asyncio.ensure_future(call(k)))
    await asyncio.wait_for(asyncio.gather(*calls), 30)

    # Six jobs of 40 ms with a 60 ms bound: at most two a batch, so at least three batches
    # (one batch of all twelve before the bound).
    assert w.batches - batches >= 3
    # The first job's caller had its answer before the last job began: it did not wait for it.
    assert returned["job 0"] < started["job 10"]
    # Queue order kept: the log holds the events in the order the calls were made, ids
    # ascending with seq, each published once after its commit, in that order.
    stored = await _stored(w)
    assert [seq for _id, seq, _data in stored] == list(range(1, 13))
    assert [i for i, _seq, _data in stored] == sorted(i for i, _seq, _data in stored)
    assert [message for _i, _s, message in stored] == names
    assert [e.seq for e in published[before:]] == list(range(1, 13))


async def test_a_writer_stopping_commits_what_a_time_bound_left(
    writer: tuple[Writer, list[StoredEvent]],
) -> None:
    """Items left by a cut batch are committed before the writer stops, none dropped."""
    w, _published = writer
    started: dict[str, float] = {}
    calls = [asyncio.ensure_future(w.run(_slow_job(f"job {k}", started))) for k in range(5)]
    await asyncio.sleep(0)  # queued, the writer has taken the first batch
    await asyncio.wait_for(w.stop(), 10)
    assert await asyncio.wait_for(asyncio.gather(*calls), 1) == [f"job {k}" for k in range(5)]
    assert [seq for _id, seq, _data in await _stored(w)] == [1, 2, 3, 4, 5]
    await w.start()  # the fixture stops it again
