"""``store.inline_reads``: a Statement read given a SQLite engine runs on the calling thread's
own connection (no pool check-out, no trip to a driver thread), sees what was committed, and
goes through the pool whenever it cannot be read there at once (issue 15)."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import bindparam, event, select
from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard.store import inline_reads, schema
from codeyard.store.db import create_engine
from codeyard.store.statement import Statement
from tests.support.sql import statements
from tests.support.writer_runs import PROJECT, run_row

pytestmark = pytest.mark.anyio
R = schema.runs
STATUS: Statement[tuple[str]] = Statement(select(R.c.status).where(R.c.id == bindparam("run_id")))


async def _seed(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        now = "2026-12-05T00:00:00.000Z"
        await conn.execute(
            schema.projects.insert().values(
                id=PROJECT, name="p", slug="p", created_at=now, updated_at=now
            )
        )
        await conn.execute(R.insert().values(**run_row("run_a", 1)))


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    await _seed(engine)
    yield engine
    await engine.dispose()


def _checkouts(engine: AsyncEngine) -> list[int]:
    taken: list[int] = []
    event.listen(engine.pool, "checkout", lambda *_args: taken.append(1))
    return taken


async def test_an_engine_read_on_sqlite_takes_no_pooled_connection(engine: AsyncEngine) -> None:
    """SQLite: the read is answered without a check-out, listeners still see it, and a write
    committed through the pool is read at once; PostgreSQL reads through the pool as before."""
    sqlite = engine.dialect.name == "sqlite"
    assert (inline_reads.reader_of(engine) is not None) is sqlite
    taken = _checkouts(engine)
    with statements(engine) as sent:
        assert await STATUS.first(engine, run_id="run_a") == ("draft",)
    assert len(sent) == 1 and sent[0].startswith("SELECT runs.status")
    assert len(taken) == (0 if sqlite else 1)
    async with engine.begin() as conn:
        await conn.execute(R.update().where(R.c.id == "run_a").values(status="running"))
    taken.clear()
    assert await STATUS.first(engine, run_id="run_a") == ("running",)
    assert await STATUS.first(engine, run_id="run_none") is None
    assert len(taken) == (0 if sqlite else 2)


async def test_a_locked_database_is_read_through_the_pool(
    tmp_path: Path, migrated_sqlite: Path
) -> None:
    """A database another connection holds locked (here one not in WAL mode, mid-write): the
    reader refuses at once rather than wait on the event loop's thread, and the read waits in
    the pool's driver thread instead, then gives the row."""
    db = tmp_path / "codeyard.db"
    shutil.copyfile(migrated_sqlite, db)
    seeding = create_engine(f"sqlite+aiosqlite:///{db}")
    await _seed(seeding)
    await seeding.dispose()
    holder = sqlite3.connect(db, isolation_level=None)
    engine = create_engine(f"sqlite+aiosqlite:///{db}")
    try:
        holder.execute("PRAGMA journal_mode=DELETE")
        holder.execute("BEGIN EXCLUSIVE")
        reader = inline_reads.reader_of(engine)
        assert reader is not None
        assert reader.read("SELECT status FROM runs", ()) is None  # at once: no busy wait
        taken = _checkouts(engine)
        asyncio.get_running_loop().call_later(0.2, holder.execute, "COMMIT")
        assert await STATUS.first(engine, run_id="run_a") == ("draft",)
        assert len(taken) == 1
    finally:
        holder.close()
        await engine.dispose()


async def test_the_reader_cannot_write_and_closes_with_the_engine(
    tmp_path: Path, migrated_sqlite: Path
) -> None:
    db = tmp_path / "codeyard.db"
    shutil.copyfile(migrated_sqlite, db)
    engine = create_engine(f"sqlite+aiosqlite:///{db}")
    await _seed(engine)
    reader = inline_reads.reader_of(engine)
    assert reader is not None
    assert reader.read("DELETE FROM runs", ()) is None  # query_only
    assert await STATUS.first(engine, run_id="run_a") == ("draft",)
    connections: list[Any] = list(reader._by_thread.values())
    assert connections
    await engine.dispose()
    assert reader.closed and inline_reads.reader_of(engine) is None
    with pytest.raises(sqlite3.ProgrammingError):  # closed
        connections[0].execute("SELECT 1")
    assert await STATUS.first(engine, run_id="run_a") == ("draft",)  # through the pool
    await engine.dispose()


async def test_only_database_files_get_a_reader() -> None:
    assert inline_reads.is_file("/data/codeyard.db", uri=False)
    assert not inline_reads.is_file(":memory:", uri=False)
    assert not inline_reads.is_file("file:x?mode=memory&cache=shared", uri=True)
    engine = create_engine("sqlite+aiosqlite://")
    assert inline_reads.reader_of(engine) is None
    await engine.dispose()


async def test_a_thread_that_ended_leaves_no_connection_behind(
    tmp_path: Path, migrated_sqlite: Path
) -> None:
    """Each thread reads on its own connection; one whose thread ended is closed when the
    next thread opens one."""
    db = tmp_path / "codeyard.db"
    shutil.copyfile(migrated_sqlite, db)
    engine = create_engine(f"sqlite+aiosqlite:///{db}")
    await _seed(engine)
    reader = inline_reads.reader_of(engine)
    assert reader is not None
    try:
        assert await STATUS.first(engine, run_id="run_a") == ("draft",)
        found: list[Any] = []
        for _ in range(3):  # each a thread of its own, which ends
            thread = threading.Thread(
                target=lambda: found.append(reader.read("SELECT status FROM runs", ()))
            )
            thread.start()
            thread.join()
        assert found == [([("draft",)], -1)] * 3
        assert len(reader._by_thread) == 2  # this thread's and the last one's
    finally:
        await engine.dispose()
