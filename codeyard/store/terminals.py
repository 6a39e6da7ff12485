"""Terminal rows (issue 18): who opened which terminal where, and how it ended."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from codeyard.store import schema
from codeyard.store.writer import Tx

T = schema.terminals


def _d(row: Row[Any]) -> dict[str, Any]:
    return dict(row._mapping)


async def find(conn: AsyncConnection, terminal_id: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(T).where(T.c.id == terminal_id))).first()
    return _d(row) if row else None


async def listing(
    conn: AsyncConnection,
    *,
    run_id: str | None = None,
    created_by: str | None = None,
    only_mine: bool = False,
    limit: int = 200,
) -> list[dict[str, Any]]:
    q = select(T).order_by(T.c.created_at.desc()).limit(limit)
    if run_id is not None:
        q = q.where(T.c.run_id == run_id)
    if only_mine:
        q = (
            q.where(T.c.created_by == created_by)
            if created_by
            else q.where(T.c.created_by.is_(None))
        )
    return [_d(r) for r in (await conn.execute(q)).all()]


async def insert(tx: Tx, values: dict[str, Any]) -> None:
    await tx.conn.execute(T.insert().values(**values))


async def save(tx: Tx, terminal_id: str, values: dict[str, Any]) -> None:
    await tx.conn.execute(update(T).where(T.c.id == terminal_id).values(**values))


async def mark_lost(tx: Tx, reason: str, now: str) -> int:
    """Terminals whose process died with the server (their scrollback stays readable)."""
    result = await tx.conn.execute(
        update(T)
        .where(T.c.status == "live")
        .values(status="lost", close_reason=reason, closed_at=now)
    )
    return int(result.rowcount or 0)
