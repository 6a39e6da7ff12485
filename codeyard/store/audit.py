"""The audit log of settings that act in every user's runs (repo scripts, copied files)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from codeyard.domain.events import utc_now
from codeyard.store import schema
from codeyard.store.pages import decode_cursor, page
from codeyard.store.writer import Tx

A = schema.audit_log


async def record(tx: Tx, actor: str, action: str, object_id: str, details: dict[str, Any]) -> None:
    """One row in the caller's transaction: the change and its audit row commit together."""
    await tx.conn.execute(
        A.insert().values(
            actor=actor,
            action=action,
            object_id=object_id,
            details=details,
            created_at=utc_now(),
        )
    )


async def list_page(
    conn: AsyncConnection, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first, keyset-paged by id."""
    stmt = select(A).order_by(A.c.id.desc()).limit(limit + 1)
    after = decode_cursor(cursor)
    if isinstance(after, int):
        stmt = stmt.where(A.c.id < after)
    rows = [dict(r._mapping) for r in (await conn.execute(stmt)).all()]
    return page(rows, limit, key=lambda r: r["id"])
