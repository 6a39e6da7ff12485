"""Checkpoint rows (the commits themselves live on ``refs/codeyard/<run-id>/<n>``)."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Row, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from codeyard.domain.errors import NotFound
from codeyard.store import schema
from codeyard.store.statement import Reader, RowWrites, Statement
from codeyard.store.writer import Tx

C = schema.checkpoints
_WRITES = RowWrites(C)


def _d(row: Row[Any]) -> dict[str, Any]:
    return dict(row._mapping)


async def next_number(conn: AsyncConnection, run_id: str) -> int:
    value = (await conn.execute(select(func.max(C.c.number)).where(C.c.run_id == run_id))).scalar()
    return int(value or 0) + 1


@functools.cache
def _last_and_attempt() -> Statement[tuple[int | None, Any, int | None]]:
    """Built once: the run's last checkpoint's number and commits, and the run's attempt."""
    run_id: Any = bindparam("run_id")
    last = select(C.c.number, C.c.commits).where(C.c.run_id == run_id)
    last = last.order_by(C.c.number.desc()).limit(1)
    attempt = select(schema.runs.c.attempt).where(schema.runs.c.id == run_id)
    return Statement(
        select(
            last.with_only_columns(C.c.number).scalar_subquery().label("number"),
            last.with_only_columns(C.c.commits).scalar_subquery().label("commits"),
            attempt.scalar_subquery().label("attempt"),
        )
    )


async def last_and_attempt(conn: Reader, run_id: str) -> tuple[dict[str, Any] | None, int | None]:
    """The run's last checkpoint (its ``number`` and ``commits``; None: none yet) and the run's
    attempt (None: no such run), in one statement: what a turn end's checkpoint needs first
    (issue 15: every checkpoint of the run, then the run, were two reads)."""
    row = await _last_and_attempt().first(conn, run_id=run_id)
    number, commits, attempt = row if row is not None else (None, None, None)
    last = None if number is None else {"number": number, "commits": commits}
    return last, attempt


async def insert(tx: Tx, values: dict[str, Any]) -> None:
    await _WRITES.insert(tx.conn, values)


async def of_run(conn: AsyncConnection, run_id: str) -> list[dict[str, Any]]:
    rows = (await conn.execute(select(C).where(C.c.run_id == run_id).order_by(C.c.number))).all()
    return [_d(r) for r in rows]


async def get(conn: AsyncConnection, checkpoint_id: str) -> dict[str, Any]:
    row = (await conn.execute(select(C).where(C.c.id == checkpoint_id))).first()
    if row is None:
        raise NotFound(
            f"No checkpoint '{checkpoint_id}'. List them with GET /api/runs/{{id}}/checkpoints."
        )
    return _d(row)
