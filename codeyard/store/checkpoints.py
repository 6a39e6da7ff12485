"""Checkpoint rows (the commits themselves live on ``refs/codeyard/<run-id>/<n>``)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from codeyard.domain.errors import NotFound
from codeyard.store import schema
from codeyard.store.writer import Tx

C = schema.checkpoints


def _d(row: Row[Any]) -> dict[str, Any]:
    return dict(row._mapping)


async def next_number(conn: AsyncConnection, run_id: str) -> int:
    value = (await conn.execute(select(func.max(C.c.number)).where(C.c.run_id == run_id))).scalar()
    return int(value or 0) + 1


async def insert(tx: Tx, values: dict[str, Any]) -> None:
    await tx.conn.execute(C.insert().values(**values))


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
