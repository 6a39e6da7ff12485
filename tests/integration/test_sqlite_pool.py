"""The SQLite engine keeps the connections a busy server needs (issue 15).

Each SQLite connection of the engine is an aiosqlite thread and a database opened with its
pragmas; SQLAlchemy's default pool (5, overflow 10) closed every connection past five as it
came back, so twenty concurrent runs opened and closed connections all along (~9 ms of the
server's CPU each, in threads that ended between the bench's samples). A real SQLite file.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard.store.db import SQLITE_POOL_SIZE, create_engine

pytestmark = pytest.mark.anyio


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'pool.db'}")
    try:
        yield engine
    finally:
        await engine.dispose()


async def _readers(engine: AsyncEngine, n: int) -> None:
    """``n`` connections checked out at once, each reading."""
    gate = asyncio.Event()

    async def one() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            await gate.wait()

    tasks = [asyncio.ensure_future(one()) for _ in range(n)]
    await asyncio.sleep(0.2)
    gate.set()
    await asyncio.gather(*tasks)


async def test_connections_of_a_busy_moment_are_kept_for_the_next(engine: AsyncEngine) -> None:
    opened: list[int] = []

    def connected(*_args: Any) -> None:
        opened.append(1)

    event.listen(engine.sync_engine, "connect", connected)
    await _readers(engine, SQLITE_POOL_SIZE)
    assert len(opened) == SQLITE_POOL_SIZE
    opened.clear()
    for _ in range(3):
        await _readers(engine, SQLITE_POOL_SIZE)
    assert opened == []  # each busy moment found its connections open
