"""Managed documents and changelog entries of projects."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from codeyard.domain.errors import NotFound
from codeyard.store import schema
from codeyard.store.writer import Tx

D = schema.project_docs
C = schema.changelog_entries


def _d(row: Row[Any]) -> dict[str, Any]:
    return dict(row._mapping)


async def of_project(conn: AsyncConnection, project_id: str) -> list[dict[str, Any]]:
    stmt = select(D).where(D.c.project_id == project_id).order_by(D.c.slug)
    return [_d(r) for r in (await conn.execute(stmt)).all()]


async def find(conn: AsyncConnection, project_id: str, slug: str) -> dict[str, Any] | None:
    stmt = select(D).where(D.c.project_id == project_id, D.c.slug == slug)
    row = (await conn.execute(stmt)).first()
    return _d(row) if row else None


async def get(conn: AsyncConnection, project_id: str, slug: str) -> dict[str, Any]:
    doc = await find(conn, project_id, slug)
    if doc is None:
        raise NotFound(
            f"No document '{slug}' in this project yet: POST /api/projects/{{id}}/docs/regenerate "
            "creates the managed ones."
        )
    return doc


async def save(tx: Tx, values: dict[str, Any]) -> None:
    await tx.conn.execute(
        delete(D).where(D.c.project_id == values["project_id"], D.c.slug == values["slug"])
    )
    await tx.conn.execute(D.insert().values(**values))


async def add_entry(tx: Tx, values: dict[str, Any]) -> None:
    await tx.conn.execute(C.insert().values(**values))


async def entries(conn: AsyncConnection, project_id: str, limit: int) -> list[dict[str, Any]]:
    stmt = (
        select(C)
        .where(C.c.project_id == project_id)
        .order_by(C.c.created_at.desc(), C.c.id.desc())
        .limit(limit)
    )
    return [_d(r) for r in (await conn.execute(stmt)).all()]
