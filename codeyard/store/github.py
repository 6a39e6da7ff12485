"""The GitHub webhook inbox and the hooks deliveries came from (issue 21).

A delivery is stored once: the insert is keyed on ``X-GitHub-Delivery`` (GitHub keeps the same
id when it redelivers), so a duplicate changes nothing. Processing reads the unprocessed rows in
arrival order and marks each with what it did.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from codeyard.domain.events import utc_now
from codeyard.store import schema
from codeyard.store.statement import Reader, Statement
from codeyard.store.upsert import insert_ignore
from codeyard.store.writer import Tx

__all__ = [
    "add_delivery",
    "hooks",
    "known_ids",
    "list_deliveries",
    "mark_processed",
    "mark_swept",
    "remember_hook",
    "runs_with_pull_requests",
    "unprocessed",
]

D = schema.github_deliveries
_UNPROCESSED: Statement[tuple[Any, ...]] = Statement(
    select(D).where(D.c.processed_at.is_(None)).order_by(D.c.id).limit(bindparam("limit"))
)
H = schema.github_hooks
_LISTED = (D.c.id, D.c.delivery_id, D.c.event, D.c.action, D.c.repo, D.c.hook_id)


async def add_delivery(tx: Tx, row: dict[str, Any]) -> bool:
    """Store a delivery; False (nothing written) when its delivery id is already stored."""
    values = {**row, "received_at": utc_now(), "processed_at": None, "outcome": None}
    return await insert_ignore(tx.conn, D, [values], ["delivery_id"]) == 1


async def unprocessed(conn: Reader, limit: int = 100) -> list[dict[str, Any]]:
    """The oldest deliveries not processed yet (one statement: the engine will do)."""
    return await _UNPROCESSED.mappings(conn, limit=limit)


async def mark_processed(tx: Tx, row_id: int, outcome: str) -> None:
    await tx.conn.execute(
        D.update().where(D.c.id == row_id).values(processed_at=utc_now(), outcome=outcome[:2000])
    )


async def list_deliveries(
    conn: AsyncConnection, *, limit: int, before: int | None, event: str | None
) -> list[dict[str, Any]]:
    """Newest first, without payloads."""
    query = select(*_LISTED, D.c.received_at, D.c.processed_at, D.c.outcome, D.c.source)
    if before is not None:
        query = query.where(D.c.id < before)
    if event:
        query = query.where(D.c.event == event)
    rows = await conn.execute(query.order_by(D.c.id.desc()).limit(limit))
    return [dict(r) for r in rows.mappings()]


async def known_ids(conn: AsyncConnection, delivery_ids: list[str]) -> set[str]:
    if not delivery_ids:
        return set()
    rows = await conn.execute(select(D.c.delivery_id).where(D.c.delivery_id.in_(delivery_ids)))
    return {r[0] for r in rows}


async def remember_hook(tx: Tx, hook_id: str, target: str, repo: str | None) -> None:
    row = {"hook_id": hook_id, "target": target, "repo": repo, "created_at": utc_now()}
    await insert_ignore(tx.conn, H, [row], ["hook_id"])


async def hooks(conn: AsyncConnection) -> list[dict[str, Any]]:
    return [dict(r) for r in (await conn.execute(select(H).order_by(H.c.hook_id))).mappings()]


async def mark_swept(tx: Tx, hook_id: str) -> None:
    await tx.conn.execute(H.update().where(H.c.hook_id == hook_id).values(swept_at=utc_now()))


async def runs_with_pull_requests(conn: AsyncConnection) -> list[dict[str, Any]]:
    """``id``, ``status`` and ``pull_request`` of every run that opened one."""
    R = schema.runs
    query = select(R.c.id, R.c.status, R.c.pull_request).where(R.c.pull_request.is_not(None))
    return [dict(r) for r in (await conn.execute(query)).mappings()]
