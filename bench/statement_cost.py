"""CPU per statement: SQLAlchemy Core against ``store.statement`` (issue 15, target 3).

On a migrated database with one run row, each shape is executed ``--count`` times on one
connection inside one transaction (after 200 warm-up executions), and the process's CPU time
(``time.process_time``: the event loop and the driver's threads) is divided by the count:

- ``core, built per call``: what most store functions did, ``select(...).where(col == value)``
  made and executed per call (construct, cache key, compiled-cache hit, context, result);
- ``core, built once``: the same construct kept, its value given as a parameter;
- ``exec_driver_sql``: the compiled string through Core's driver-SQL path;
- ``Statement``: ``store.statement``, the string sent through the driver's adapter.

Shapes: the run's status (one row, two columns), the whole run row as a dict (47 columns, 12
of them JSON), an ``UPDATE`` of one column. SQLite always; PostgreSQL too with ``--pg`` (a
throw-away cluster, ``codeyard.testing.postgres``; the server's CPU is not counted).

    .venv/bin/python bench/statement_cost.py [--count 3000] [--pg]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bench._common import on_databases
from codeyard.store import schema
from codeyard.store.db import create_engine, migrate
from codeyard.store.statement import Statement
from tests.support.writer_runs import PROJECT, run_row

R = schema.runs
Shape = Callable[[AsyncConnection], Awaitable[Any]]


async def _seeded(url: str) -> AsyncEngine:
    engine = create_engine(url)
    await migrate(engine)
    async with engine.begin() as conn:
        now = "2026-12-05T00:00:00.000Z"
        project = {"id": PROJECT, "name": "p", "slug": "p", "created_at": now, "updated_at": now}
        await conn.execute(schema.projects.insert().values(**project))
        await conn.execute(R.insert().values(**run_row("run_1", 1)))
    return engine


def _shapes(engine: AsyncEngine) -> dict[str, dict[str, Shape]]:
    dialect = engine.dialect
    status_of = select(R.c.status, R.c.resolution).where(R.c.id == bindparam("run_id"))
    row_of = select(R).where(R.c.id == bindparam("run_id"))
    set_turns = update(R).where(R.c.id == bindparam("run_id")).values(turns=bindparam("turns"))
    status: Statement[tuple[str, str | None]] = Statement(status_of)
    row: Statement[tuple[Any, ...]] = Statement(row_of)
    turns: Statement[tuple[()]] = Statement(set_turns)
    status_sql = status.compiled(dialect).sql
    row_sql = row.compiled(dialect).sql
    turns_sql = turns.compiled(dialect).sql  # SET turns, then WHERE id

    async def status_built(c: AsyncConnection) -> Any:
        stmt = select(R.c.status, R.c.resolution).where(R.c.id == "run_1")
        return (await c.execute(stmt)).first()

    async def row_built(c: AsyncConnection) -> Any:
        return dict((await c.execute(select(R).where(R.c.id == "run_1"))).one()._mapping)

    async def row_once(c: AsyncConnection) -> Any:
        return dict((await c.execute(row_of, {"run_id": "run_1"})).one()._mapping)

    async def row_driver(c: AsyncConnection) -> Any:
        return dict((await c.exec_driver_sql(row_sql, ("run_1",))).one()._mapping)

    async def turns_built(c: AsyncConnection) -> Any:
        return await c.execute(update(R).where(R.c.id == "run_1").values(turns=3))

    async def status_once(c: AsyncConnection) -> Any:
        return (await c.execute(status_of, {"run_id": "run_1"})).first()

    async def status_driver(c: AsyncConnection) -> Any:
        return (await c.exec_driver_sql(status_sql, ("run_1",))).first()

    async def turns_once(c: AsyncConnection) -> Any:
        return await c.execute(set_turns, {"run_id": "run_1", "turns": 3})

    async def turns_driver(c: AsyncConnection) -> Any:
        return await c.exec_driver_sql(turns_sql, (3, "run_1"))

    return {
        "status (2 columns)": {
            "core, built per call": status_built,
            "core, built once": status_once,
            "exec_driver_sql": status_driver,
            "Statement": lambda c: status.first(c, run_id="run_1"),
        },
        "whole run row, as a dict": {
            "core, built per call": row_built,
            "core, built once": row_once,
            "exec_driver_sql": row_driver,
            "Statement": lambda c: row.first_mapping(c, run_id="run_1"),
        },
        "UPDATE one column": {
            "core, built per call": turns_built,
            "core, built once": turns_once,
            "exec_driver_sql": turns_driver,
            "Statement": lambda c: turns.run(c, run_id="run_1", turns=3),
        },
    }


async def _measure(url: str, count: int) -> None:
    engine = await _seeded(url)
    try:
        for shape, ways in _shapes(engine).items():
            print(f"{engine.dialect.name}: {shape}")
            for way, fn in ways.items():
                async with engine.begin() as conn:
                    for _ in range(200):
                        await fn(conn)
                    start = time.process_time()
                    for _ in range(count):
                        await fn(conn)
                    cpu = time.process_time() - start
                print(f"  {way:22s} {cpu / count * 1e6:7.1f} µs CPU per statement")
    finally:
        await engine.dispose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=3000, help="executions per shape and way")
    ap.add_argument("--pg", action="store_true", help="PostgreSQL too (a throw-away cluster)")
    args = ap.parse_args()
    on_databases(_measure, args.count, args.pg, "statement-cost-")


if __name__ == "__main__":
    main()
