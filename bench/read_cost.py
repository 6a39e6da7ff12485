"""CPU per one-statement read with its connection (issue 15, target 3).

What a caller of one read pays besides the statement: the pool's check-out, the transaction
and the return. On a migrated database with one run row, each way is done ``--count`` times
(after 200 warm-up reads) and the process's CPU time (``time.process_time``: the event loop
and the driver's threads) is divided by the count:

- ``check-out and return only``: ``async with engine.connect(): pass``;
- ``connect, Statement, close``: how callers read (the statement begins a transaction, the
  pool's reset on return ends it: SQLite's ROLLBACK is a trip to the driver's thread);
- ``Statement on the engine``: ``store.statement``'s read on an engine: on a SQLite file, on
  the event loop thread's own connection (``store.inline_reads``: no check-out, no trip to a
  driver thread); otherwise a connection of its own, the statement outside any transaction,
  nothing to end on return.

SQLite always; PostgreSQL too with ``--pg`` (a throw-away cluster; its server's CPU is not
counted, its round trips are).

    .venv/bin/python bench/read_cost.py [--count 3000] [--pg]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bench._common import on_databases
from bench.statement_cost import _seeded
from codeyard.store import schema
from codeyard.store.statement import Statement

R = schema.runs
_STATUS: Statement[tuple[str, str | None]] = Statement(
    select(R.c.status, R.c.resolution).where(R.c.id == bindparam("run_id"))
)


def _ways(engine: AsyncEngine) -> dict[str, Callable[[], Awaitable[Any]]]:
    async def checkout() -> None:
        async with engine.connect():
            pass

    async def today() -> Any:
        async with engine.connect() as conn:
            return await _STATUS.first(conn, run_id="run_1")

    async def alone() -> Any:
        return await _STATUS.first(engine, run_id="run_1")

    return {
        "check-out and return only": checkout,
        "connect, Statement, close": today,
        "Statement on the engine": alone,
    }


async def _measure(url: str, count: int) -> None:
    engine = await _seeded(url)
    try:
        print(f"{engine.dialect.name}: the run's status (2 columns)")
        for way, fn in _ways(engine).items():
            for _ in range(200):
                await fn()
            start, wall = time.process_time(), time.perf_counter()
            for _ in range(count):
                await fn()
            cpu, wall = time.process_time() - start, time.perf_counter() - wall
            print(f"  {way:28s} {cpu / count * 1e6:7.1f} µs CPU, {wall / count * 1e6:7.1f} µs wall")
    finally:
        await engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=3000, help="reads per way")
    ap.add_argument("--pg", action="store_true", help="PostgreSQL too (a throw-away cluster)")
    args = ap.parse_args()
    on_databases(_measure, args.count, args.pg, "read-cost-")


if __name__ == "__main__":
    main()
