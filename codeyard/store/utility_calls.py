"""Utility-model calls: what each cost (tokens, dollars), for analytics and the settings page."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from codeyard.store import schema
from codeyard.store.writer import Tx

U = schema.utility_calls


async def insert(tx: Tx, values: dict[str, Any]) -> None:
    await tx.conn.execute(U.insert().values(**values))


async def totals(conn: AsyncConnection) -> dict[str, Any]:
    row = (
        await conn.execute(
            select(
                func.count(U.c.id),
                func.coalesce(func.sum(U.c.input_tokens), 0),
                func.coalesce(func.sum(U.c.output_tokens), 0),
                func.sum(U.c.cost_usd),
            )
        )
    ).one()
    return {
        "calls": int(row[0]),
        "input_tokens": int(row[1]),
        "output_tokens": int(row[2]),
        "cost_usd": float(row[3]) if row[3] is not None else None,
    }


async def recent(conn: AsyncConnection, limit: int = 50) -> list[dict[str, Any]]:
    rows = await conn.execute(select(U).order_by(U.c.created_at.desc()).limit(limit))
    return [dict(r._mapping) for r in rows.all()]
