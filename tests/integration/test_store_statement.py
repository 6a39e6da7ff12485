"""``store.statement``: a Core construct's SQL sent by the driver (issue 15) gives what Core
gives (rows, conversions, rowcounts, errors, transactions, statement listeners), on SQLite and
PostgreSQL, against the migrated schema.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import bindparam, event, func, select, update
from sqlalchemy.exc import IntegrityError, PendingRollbackError
from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard.domain.errors import NotFound
from codeyard.store import runs, schema
from codeyard.store.db import create_engine
from codeyard.store.sqlite_driver import OneHopConnection
from codeyard.store.statement import RowWrites, Statement
from tests.support.sql import statements
from tests.support.writer_runs import PROJECT, run_row

pytestmark = pytest.mark.anyio
R = schema.runs
ROW: Statement[tuple[Any, ...]] = Statement(select(R).where(R.c.id == bindparam("run_id")))
COUNT: Statement[tuple[int]] = Statement(select(func.count()).select_from(R))
WRITES = RowWrites(R)


async def _seeded(url: str) -> AsyncEngine:
    engine = create_engine(url)
    async with engine.begin() as conn:
        now = "2026-12-05T00:00:00.000Z"
        await conn.execute(
            schema.projects.insert().values(
                id=PROJECT, name="p", slug="p", created_at=now, updated_at=now
            )
        )
        await conn.execute(R.insert().values(**run_row("run_a", 1)))
    return engine


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = await _seeded(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def sqlite_engine(tmp_path: Path, migrated_sqlite: Path) -> AsyncIterator[AsyncEngine]:
    """For what only SQLite's driver thread has."""
    db = tmp_path / "codeyard.db"
    shutil.copyfile(migrated_sqlite, db)
    engine = await _seeded(f"sqlite+aiosqlite:///{db}")
    yield engine
    await engine.dispose()


async def _core_row(engine: AsyncEngine, run_id: str) -> dict[str, Any]:
    async with engine.connect() as conn:
        row = (await conn.execute(select(R).where(R.c.id == run_id))).one()
        return dict(row._mapping)


async def test_rows_and_writes_are_what_core_reads_and_writes(engine: AsyncEngine) -> None:
    values = {
        "usage": {"input_tokens": 3, "cost_usd": 0.25},  # JSON
        "archived": True,  # a boolean
        "run_seconds": 1.5,  # a float
        "pull_request": None,  # SQL NULL in a JSON column
        "labels": ["a", "b"],
        "turns": 4,
    }
    async with engine.begin() as conn:
        assert await WRITES.update(conn, "run_a", values) == 1
        assert await WRITES.update(conn, "run_none", values) == 0
        second = {**run_row("run_b", 2), "labels": ["x"], "trusted": True}
        await WRITES.insert(conn, second)
    core = await _core_row(engine, "run_a")
    assert {k: core[k] for k in values} == values
    async with engine.connect() as conn:
        assert await ROW.first_mapping(conn, run_id="run_a") == core
        assert await ROW.first_mapping(conn, run_id="run_b") == await _core_row(engine, "run_b")
        assert await ROW.first_mapping(conn, run_id="run_none") is None
        assert await COUNT.scalar(conn) == 2
        rows = await ROW.rows(conn, run_id="run_a")
        assert [dict(zip(core, rows[0], strict=True))] == [core]
        # A SQL expression among the values is rendered by Core.
        assert await WRITES.update(conn, "run_a", {"turns": R.c.turns + 1}) == 1
        assert (await ROW.first_mapping(conn, run_id="run_a") or {})["turns"] == 5


async def test_returning_and_literals_of_the_construct(engine: AsyncEngine) -> None:
    bump: Statement[tuple[int]] = Statement(
        update(R)
        .where(R.c.id == bindparam("run_id"), R.c.status == "draft")
        .values(attempt=R.c.attempt + 1)
        .returning(R.c.attempt)
    )
    async with engine.begin() as conn:
        assert await bump.first(conn, run_id="run_a") == (1,)
        assert await bump.scalar(conn, run_id="run_a") == 2
        assert await bump.first(conn, run_id="run_none") is None
        with pytest.raises(TypeError, match="run_id"):
            await bump.first(conn)
    with pytest.raises(ValueError, match="expanding"):
        Statement(select(R.c.id).where(R.c.status.in_(["a", "b"]))).compiled(engine.dialect)


async def test_the_transaction_is_cores(engine: AsyncEngine) -> None:
    """A connection not in a transaction begins one (as Core's autobegin): a rollback undoes
    the statement, a commit keeps it, the pool's reset ends it."""
    async with engine.connect() as conn:
        await WRITES.update(conn, "run_a", {"turns": 7})
        assert conn.in_transaction()
        await conn.rollback()
        assert (await ROW.first_mapping(conn, run_id="run_a") or {})["turns"] == 0
        await conn.rollback()
        await WRITES.update(conn, "run_a", {"turns": 8})
        await conn.commit()
    async with engine.connect() as conn:
        await WRITES.update(conn, "run_a", {"turns": 9})  # never committed: the reset drops it
    assert (await _core_row(engine, "run_a"))["turns"] == 8
    async with engine.begin() as conn, conn.begin_nested() as savepoint:
        await WRITES.update(conn, "run_a", {"turns": 10})
        await savepoint.rollback()
    assert (await _core_row(engine, "run_a"))["turns"] == 8


async def test_errors_are_raised_as_core_raises_them(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        with pytest.raises(IntegrityError):
            await WRITES.insert(conn, run_row("run_a", 3))  # the id is taken
        await conn.rollback()
        assert await COUNT.scalar(conn) == 1  # the connection is usable again


async def test_listeners_see_each_statement_and_an_invalidated_connection_reconnects(
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as conn:
        with statements(engine) as sent:
            await ROW.first(conn, run_id="run_a")
            await WRITES.update(conn, "run_a", {"turns": 2})
        assert sent == [
            ROW.compiled(engine.dialect).sql,
            WRITES.update_statement(("turns",)).compiled(engine.dialect).sql,
        ]
        await conn.rollback()
        await conn.invalidate()  # Core must reconnect first: the statement goes through Core
        assert (await ROW.first_mapping(conn, run_id="run_a")) == await _core_row(engine, "run_a")


async def test_a_transaction_core_would_refuse_is_refused(engine: AsyncEngine) -> None:
    """Invalidated inside a transaction: Core refuses every statement until a rollback, and
    so does a Statement (Core's own error), then reconnects."""
    async with engine.connect() as conn:
        await ROW.first(conn, run_id="run_a")
        await conn.invalidate()
        with pytest.raises(PendingRollbackError):
            await conn.execute(select(R.c.id))
        with pytest.raises(PendingRollbackError):
            await ROW.first(conn, run_id="run_a")
        await conn.rollback()
        assert await COUNT.scalar(conn) == 1


async def test_a_read_on_the_engine_is_alone_outside_any_transaction(engine: AsyncEngine) -> None:
    """A read given the engine: the row a connection reads, with no transaction begun, so the
    pool's reset on return has nothing to end (SQLite: no trip to the driver's thread); a read
    on a connection still begins one, which its return ends."""
    begun: list[int] = []
    trips: list[int] = []  # SQLite: calls into the driver's thread from check-out to check-in

    def _begin(_conn: Any) -> None:
        begun.append(len(trips))

    def _checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        if isinstance(dbapi_connection, OneHopConnection):
            trips.append(dbapi_connection._late().calls_sent)

    def _checkin(dbapi_connection: Any, _record: Any) -> None:
        if isinstance(dbapi_connection, OneHopConnection):
            trips.append(dbapi_connection._late().calls_sent - trips.pop())

    expected = await _core_row(engine, "run_a")
    listeners = [("begin", _begin), ("checkout", _checkout), ("checkin", _checkin)]
    for name, fn in listeners:
        event.listen(engine.sync_engine if name == "begin" else engine.pool, name, fn)
    try:
        async with engine.connect() as conn:
            assert await ROW.first_mapping(conn, run_id="run_a") == expected
        connection_trips = list(trips)
        assert await ROW.first_mapping(engine, run_id="run_a") == expected
        assert await runs.get(engine, "run_a") == expected
        assert await COUNT.scalar(engine) == 1
        with pytest.raises(NotFound):
            await runs.get(engine, "run_none")
    finally:
        for name, fn in listeners:
            event.remove(engine.sync_engine if name == "begin" else engine.pool, name, fn)
    assert len(begun) == 1  # the connection's read only
    if engine.dialect.name == "sqlite":
        assert connection_trips == [2]  # BEGIN with the statement, then the ROLLBACK
        # The engine's reads: on the loop thread's own connection (``store.inline_reads``),
        # none checked out.
        assert trips == [2]


async def test_a_rollback_waits_for_a_call_still_in_the_thread(sqlite_engine: AsyncEngine) -> None:
    """A call into SQLite's thread may still wait there when its connection goes back to the
    pool (its awaiting task gone), with the ``BEGIN`` it carries not yet run: the reset's
    rollback is sent after it all the same (the database not being in a transaction yet is no
    proof that none will be open), so the next check-out finds none left open."""
    engine = sqlite_engine
    conn = await engine.connect()
    driver: Any = (await conn.get_raw_connection()).driver_connection
    busy = asyncio.ensure_future(driver._execute(time.sleep, 0.3))  # the thread's queue waits
    await asyncio.sleep(0.01)
    driver.begin_later()
    begun = asyncio.ensure_future(driver._execute(time.sleep, 0))  # BEGIN, then the call
    await asyncio.sleep(0.05)
    assert not driver._connection.in_transaction
    await conn.close()
    await asyncio.gather(busy, begun)
    assert engine.pool.checkedin() == 1  # type: ignore[attr-defined]
    async with engine.begin() as again:  # the same connection: the pool holds only it
        assert await COUNT.scalar(again) == 1
