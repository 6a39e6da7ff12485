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
        calls.append(getattr(fn, "__name__", repr(fn)))
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
        # BEGIN, SELECT, INSERT, COMMIT: SQLAlchemy's own adapter made 3 + 4 + 3 + 1.
        assert len(hand_offs) == 4, hand_offs
