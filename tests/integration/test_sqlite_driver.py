"""SQLite statements in one hand-off to aiosqlite's thread (``store.sqlite_driver``).

The engine ``store.db.create_engine`` makes for SQLite sends each statement to the driver's
thread once: cursor, execute, rows and close in one call. What SQLAlchemy reads back (rows,
column names, ``rowcount``, ``lastrowid``) and how it reports errors must be as with its own
adapter. A real SQLite file throughout.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard.store.db import create_engine

pytestmark = pytest.mark.anyio

META = MetaData()
ITEMS = Table(
    "items",
    META,
    Column("id", Integer, primary_key=True),
    Column("name", String, unique=True, nullable=False),
    Column("size", Integer, nullable=False),
)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'driver.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(META.create_all)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def hand_offs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every call sent to an aiosqlite connection's thread, by the name of what it runs."""
    calls: list[str] = []
    execute = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Callable[..., Any], *a: Any, **k: Any) -> Any:
        name = getattr(fn, "__name__", repr(fn))
        if name == "_call":  # store.sqlite_driver's: (connection, sent first, the call, …)
            name = "_begun" if a[1] else getattr(a[2], "__name__", repr(a[2]))
        calls.append(name)
        return await execute(self, fn, *a, **k)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return calls


async def test_rows_columns_rowcount_and_inserted_keys_are_as_sqlalchemy_reads_them(
    engine: AsyncEngine,
) -> None:
    async with engine.begin() as conn:
        first = await conn.execute(insert(ITEMS).values(name="a", size=1))
        assert first.inserted_primary_key == (1,)  # from the cursor's lastrowid
        await conn.execute(insert(ITEMS), [{"name": "b", "size": 2}, {"name": "c", "size": 3}])
        moved = await conn.execute(update(ITEMS).where(ITEMS.c.size >= 2).values(size=9))
        assert moved.rowcount == 2
        rows = (await conn.execute(select(ITEMS).order_by(ITEMS.c.id))).all()
        assert [tuple(r) for r in rows] == [(1, "a", 1), (2, "b", 9), (3, "c", 9)]
        assert list(rows[0]._mapping) == ["id", "name", "size"]  # the cursor's description
        one = await conn.execute(select(ITEMS.c.name).where(ITEMS.c.id == 2))
        assert one.scalar_one() == "b"
        none = await conn.execute(select(ITEMS.c.name).where(ITEMS.c.id == 99))
        assert none.first() is None
    async with engine.connect() as conn:  # committed: another transaction sees it
        streamed = await conn.stream(select(ITEMS.c.name).order_by(ITEMS.c.id))
        assert [r.name async for r in streamed] == ["a", "b", "c"]  # a server-side cursor


async def test_driver_errors_are_wrapped_as_sqlalchemy_wraps_them(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.execute(insert(ITEMS).values(name="a", size=1))
        await conn.commit()
        with pytest.raises(IntegrityError) as duplicate:
            await conn.execute(insert(ITEMS).values(name="a", size=2))
        assert isinstance(duplicate.value.orig, sqlite3.IntegrityError)
        await conn.rollback()
        with pytest.raises(OperationalError) as bad:
            await conn.execute(text("SELECT nothing FROM nowhere"))
        assert isinstance(bad.value.orig, sqlite3.OperationalError)
        await conn.rollback()
        # The connection goes on after both.
        assert (await conn.execute(select(ITEMS.c.size))).scalars().all() == [1]


async def test_each_statement_is_one_hand_off_to_the_driver_thread(
    engine: AsyncEngine, hand_offs: list[str]
) -> None:
    async with engine.connect() as conn:
        await conn.execute(select(ITEMS.c.id))  # the pool's first check-out is done
        await conn.rollback()
        hand_offs.clear()
        async with conn.begin():
            await conn.execute(select(ITEMS.c.id).where(ITEMS.c.id == 1))
            await conn.execute(insert(ITEMS).values(name="z", size=1))
        # BEGIN with the SELECT, the INSERT, COMMIT: SQLAlchemy's own adapter made 3 + 4 + 3 + 1
        # (and BEGIN was a hand-off of its own before it was folded into the next statement's).
        assert hand_offs == ["_begun", "_run", "commit"], hand_offs


async def test_a_transaction_that_sends_nothing_costs_no_hand_off(
    engine: AsyncEngine, hand_offs: list[str]
) -> None:
    async with engine.connect() as conn:
        await conn.execute(select(ITEMS.c.id))
        await conn.rollback()
        hand_offs.clear()
        async with conn.begin():
            pass
        await conn.begin()
        await conn.rollback()
        assert hand_offs == []
        await conn.execute(select(ITEMS.c.id))  # a read: BEGIN with it, the pool's ROLLBACK
    assert hand_offs == ["_begun", "rollback"], hand_offs


async def test_the_transaction_begins_with_the_first_statement_whichever_it_is(
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as reader, engine.connect() as other:
        # A read transaction sees one snapshot: it did begin (autocommit would see the insert).
        await reader.begin()
        assert (await reader.execute(select(ITEMS.c.id))).all() == []
        await other.execute(insert(ITEMS).values(name="a", size=1))
        await other.commit()
        assert (await reader.execute(select(ITEMS.c.id))).all() == []
        await reader.rollback()
        assert len((await reader.execute(select(ITEMS.c.id))).all()) == 1
        await reader.rollback()

        # The writer's own statements on the driver's connection (``store.writer._flush``), sent
        # first in the transaction, are inside it: a rollback takes them back.
        await other.begin()
        driver = (await other.get_raw_connection()).driver_connection
        assert driver is not None
        await driver.executemany("INSERT INTO items (name, size) VALUES (?, ?)", [("b", 2)])
        await driver.execute("UPDATE items SET size = 5 WHERE name = 'a'")
        await other.rollback()
        rows = (await other.execute(select(ITEMS.c.name, ITEMS.c.size))).all()
        assert [tuple(r) for r in rows] == [("a", 1)]
        await other.rollback()


async def test_savepoints_roll_back_only_their_part(engine: AsyncEngine) -> None:
    async with engine.connect() as conn:
        await conn.begin()
        inner = await conn.begin_nested()  # SAVEPOINT is the transaction's first statement
        await conn.execute(insert(ITEMS).values(name="gone", size=1))
        await inner.rollback()
        await conn.execute(insert(ITEMS).values(name="kept", size=2))
        inner = await conn.begin_nested()
        await conn.execute(insert(ITEMS).values(name="also kept", size=3))
        await inner.commit()
        inner = await conn.begin_nested()
        with pytest.raises(IntegrityError):
            await conn.execute(insert(ITEMS).values(name="kept", size=4))
        await inner.rollback()
        await conn.commit()
    async with engine.connect() as conn:
        names = (await conn.execute(select(ITEMS.c.name).order_by(ITEMS.c.id))).scalars().all()
    assert names == ["kept", "also kept"]
