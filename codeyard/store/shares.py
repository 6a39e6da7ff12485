"""Read-only share links to one run (stored by digest only)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from codeyard.domain.errors import NotFound
from codeyard.store import schema
from codeyard.store.writer import Tx

L = schema.share_links


def _d(row: Row[Any]) -> dict[str, Any]:
    return dict(row._mapping)


def public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("id", "run_id", "created_by", "expires_at", "created_at")}


async def find(conn: AsyncConnection, secret_hash: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(L).where(L.c.secret_hash == secret_hash))).first()
    return _d(row) if row else None


async def of_run(conn: AsyncConnection, run_id: str) -> list[dict[str, Any]]:
    rows = await conn.execute(select(L).where(L.c.run_id == run_id).order_by(L.c.created_at))
    return [_d(r) for r in rows.all()]


async def get(conn: AsyncConnection, share_id: str, run_id: str) -> dict[str, Any]:
    row = (await conn.execute(select(L).where(L.c.id == share_id, L.c.run_id == run_id))).first()
    if row is None:
        raise NotFound(f"No share link '{share_id}' on this run. List them with GET …/shares.")
    return _d(row)


async def insert(tx: Tx, values: dict[str, Any]) -> None:
    await tx.conn.execute(L.insert().values(**values))


async def remove(tx: Tx, share_id: str) -> None:
    await tx.conn.execute(delete(L).where(L.c.id == share_id))


async def remove_of_run(tx: Tx, run_id: str) -> None:
    await tx.conn.execute(delete(L).where(L.c.run_id == run_id))
