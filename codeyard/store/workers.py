"""Worker rows (issue 16): one per host process that executes runs, kept fresh by heartbeats."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from codeyard.store import schema
from codeyard.store.writer import Tx

W = schema.workers


async def upsert(tx: Tx, row: dict[str, Any]) -> None:
    """Insert the worker, or refresh everything but ``started_at`` (a portable upsert: the
    writer is the only writer of this process, and a worker id belongs to one process)."""
    changes = {k: v for k, v in row.items() if k not in ("id", "started_at")}
    result = await tx.conn.execute(update(W).where(W.c.id == row["id"]).values(**changes))
    if result.rowcount == 0:
        await tx.conn.execute(W.insert().values(**row))


async def beat(tx: Tx, worker_id: str, free_slots: int, at: str) -> bool:
    """A heartbeat: only the time and the free slots change. False if the row is gone."""
    result = await tx.conn.execute(
        update(W).where(W.c.id == worker_id).values(free_slots=free_slots, heartbeat_at=at)
    )
    return bool(result.rowcount)


async def remove(tx: Tx, worker_id: str) -> None:
    await tx.conn.execute(W.delete().where(W.c.id == worker_id))


async def list_all(conn: AsyncConnection) -> list[dict[str, Any]]:
    rows = (await conn.execute(select(W).order_by(W.c.host, W.c.id))).all()
    return [dict(r._mapping) for r in rows]
