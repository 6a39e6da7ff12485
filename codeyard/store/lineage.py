"""Run lineage queries: a run's ancestors and the sub-runs agents started from it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from codeyard.store import schema

R = schema.runs
#: A lineage longer than this is corrupt data, not delegation (limits stop far earlier).
MAX_CHAIN = 64


async def ancestors(conn: AsyncConnection, run_id: str) -> list[str]:
    """``run_id`` followed by its ancestors' ids, nearest first (stops at a missing parent)."""
    chain = [run_id]
    current: str | None = run_id
    while current is not None and len(chain) < MAX_CHAIN:
        parent = (
            await conn.execute(select(R.c.parent_run_id).where(R.c.id == current))
        ).scalar_one_or_none()
        if parent is None or parent in chain:
            break
        chain.append(parent)
        current = parent
    return chain


async def delegated_children(conn: AsyncConnection, run_id: str) -> list[dict[str, Any]]:
    """Sub-runs agents started from ``run_id`` through MCP (id, status, budget, usage).

    Filtered in Python: a JSON column stores Python ``None`` as JSON ``null``, not SQL NULL.
    """
    rows = (
        await conn.execute(
            select(R.c.id, R.c.status, R.c.budget_usd, R.c.usage, R.c.delegation)
            .where(R.c.parent_run_id == run_id)
            .order_by(R.c.number)
        )
    ).all()
    return [dict(r._mapping) for r in rows if r.delegation]


async def descendant_ids(conn: AsyncConnection, run_id: str) -> set[str]:
    """Every run below ``run_id`` (breadth first, bounded by ``MAX_CHAIN`` levels)."""
    found: set[str] = set()
    frontier = [run_id]
    for _ in range(MAX_CHAIN):
        if not frontier:
            break
        rows = (await conn.execute(select(R.c.id).where(R.c.parent_run_id.in_(frontier)))).all()
        frontier = [r[0] for r in rows if r[0] not in found]
        found.update(frontier)
    return found
