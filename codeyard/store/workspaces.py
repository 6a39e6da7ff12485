"""Workspace rows (``schema.workspaces``; issue 22)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from codeyard.domain.errors import NotFound
from codeyard.store import schema
from codeyard.store.pages import newest_first, page
from codeyard.store.writer import Tx

__all__ = ["find_by_name", "get", "insert", "list_page", "remove", "update_workspace"]

W = schema.workspaces


def _d(row: Row[Any]) -> dict[str, Any]:
    return dict(row._mapping)


async def get(conn: AsyncConnection, workspace_id: str) -> dict[str, Any]:
    row = (await conn.execute(select(W).where(W.c.id == workspace_id))).first()
    if row is None:
        raise NotFound(f"No workspace '{workspace_id}'. List them with GET /api/workspaces.")
    return _d(row)


async def find_by_name(conn: AsyncConnection, name: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(W).where(W.c.name == name))).first()
    return _d(row) if row is not None else None


async def list_page(
    conn: AsyncConnection, limit: int, cursor: str | None, only_owner: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first; ``only_owner``: that user's workspaces only."""
    stmt = select(W)
    if only_owner is not None:
        stmt = stmt.where(W.c.owner_id == only_owner)
    rows = [_d(r) for r in (await conn.execute(newest_first(stmt, W, cursor, limit))).all()]
    return page(rows, limit, key=lambda r: [r["created_at"], r["id"]])


async def insert(tx: Tx, values: dict[str, Any]) -> None:
    await tx.conn.execute(W.insert().values(**values))


async def update_workspace(tx: Tx, workspace_id: str, values: dict[str, Any]) -> None:
    await tx.conn.execute(update(W).where(W.c.id == workspace_id).values(**values))


async def remove(tx: Tx, workspace_id: str) -> None:
    await tx.conn.execute(delete(W).where(W.c.id == workspace_id))
