"""A writer job that fails undoes its own writes and nothing else (SQLite and PostgreSQL).

In a batch of several jobs each runs in its own savepoint, so one failing rolls back alone. A
batch of one job takes no savepoint: if that job fails, the batch's transaction rolls back, which
undoes the same writes. Either way its caller gets its own error, its events are neither stored
nor published, the run's numbering does not move, and the writer goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import event, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard.domain import events as ev
from codeyard.domain.events import StoredEvent
from codeyard.store import schema
from codeyard.store.db import create_engine
from codeyard.store.writer import Tx, Writer
from tests.support.writer_runs import add_runs

pytestmark = pytest.mark.anyio

C = schema.consumer_cursors


class Failed(Exception):
    """A job's own failure."""


class Fixture:
    def __init__(self, engine: AsyncEngine, writer: Writer, published: list[StoredEvent]):
        self.engine = engine
        self.writer = writer
        self.published = published
        self.statements: list[str] = []

    async def cursors(self) -> dict[str, int]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(C.c.name, C.c.last_event_id))).all()
        return {r.name: r.last_event_id for r in rows}

    async def seqs(self, run_id: str) -> list[int]:
        E = schema.events
        async with self.engine.connect() as conn:
            stmt = select(E.c.seq).where(E.c.run_id == run_id).order_by(E.c.seq)
            return list((await conn.execute(stmt)).scalars())


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Fixture]:
    engine = create_engine(database_url)
    published: list[StoredEvent] = []
    writer = Writer(engine, published.extend, batch_seconds=60)  # batches by count, not time
    await writer.start()
    fx = Fixture(engine, writer, published)

    def seen(_c: Any, _cur: Any, statement: str, *_rest: Any) -> None:
        fx.statements.append(statement.split()[0].upper())

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    try:
        await add_runs(writer, "run_a")
        yield fx
    finally:
        await asyncio.wait_for(writer.stop(), 10)
        await engine.dispose()


def _job(name: str, *, fail: bool = False) -> Any:
    async def job(tx: Tx) -> str:
        await tx.conn.execute(insert(C).values(name=name, last_event_id=7))
        await tx.emit("run_a", [ev.ErrorEvent(message=name)])
        if fail:
            raise Failed(name)
        return name

    return job


async def test_a_failing_job_alone_in_its_batch_undoes_its_writes_without_a_savepoint(
    db: Fixture,
) -> None:
    batches, published = db.writer.batches, len(db.published)
    db.statements.clear()
    with pytest.raises(Failed, match="alone"):
        await db.writer.run(_job("alone", fail=True))
    assert db.writer.batches - batches == 1
    assert "SAVEPOINT" not in db.statements  # a batch of one job: its transaction is the undo
    assert await db.cursors() == {}
    assert await db.seqs("run_a") == []
    assert len(db.published) == published
    # The writer goes on, and the run's numbering did not move.
    assert await db.writer.run(_job("next")) == "next"
    assert await db.cursors() == {"next": 7}
    assert await db.seqs("run_a") == [1]
    assert [e.seq for e in db.published[published:]] == [1]


async def test_a_failing_job_among_others_rolls_back_alone(db: Fixture) -> None:
    batches, published = db.writer.batches, len(db.published)
    db.statements.clear()
    results = await asyncio.wait_for(
        asyncio.gather(
            db.writer.run(_job("one")),
            db.writer.run(_job("two", fail=True)),
            db.writer.run(_job("three")),
            return_exceptions=True,
        ),
        10,
    )
    assert db.writer.batches - batches == 1  # one batch (batched by count here, not time)
    if db.engine.dialect.name == "postgresql":  # SQLite's go with the jobs' statements, past
        assert db.statements.count("SAVEPOINT") == 3  # SQLAlchemy (test_writer_sqlite_commit)
    assert results[0] == "one" and results[2] == "three"
    assert isinstance(results[1], Failed)
    assert await db.cursors() == {"one": 7, "three": 7}
    assert await db.seqs("run_a") == [1, 2]
    assert [e.seq for e in db.published[published:]] == [1, 2]
