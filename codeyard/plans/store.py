"""Plan rows (plain dicts)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from codeyard.domain.errors import NotFound
from codeyard.domain.events import utc_now
from codeyard.store import schema
from codeyard.store.pages import newest_first, page
from codeyard.store.writer import Tx

P = schema.plans


def _d(row: Row[Any]) -> dict[str, Any]:
    return dict(row._mapping)


async def get_plan(conn: AsyncConnection, project: dict[str, Any], plan_id: str) -> dict[str, Any]:
    stmt = select(P).where((P.c.id == plan_id) & (P.c.project_id == project["id"]))
    row = (await conn.execute(stmt)).first()
    if row is None:
        raise NotFound(
            f"No plan '{plan_id}' in project '{project['slug']}'. List them with "
            f"GET /api/projects/{project['slug']}/plans."
        )
    return _d(row)


async def list_plans(
    conn: AsyncConnection, project_id: str, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first; ``cursor`` is the last ``[created_at, id]`` seen."""
    stmt = select(P).where(P.c.project_id == project_id)
    stmt = newest_first(stmt, P, cursor, limit)
    rows = [_d(r) for r in (await conn.execute(stmt)).all()]
    return page(rows, limit, key=lambda r: [r["created_at"], r["id"]])


async def insert_plan(tx: Tx, values: dict[str, Any]) -> None:
    await tx.conn.execute(P.insert().values(**values))


async def update_plan(tx: Tx, plan_id: str, values: dict[str, Any]) -> dict[str, Any]:
    await tx.conn.execute(update(P).where(P.c.id == plan_id).values(updated_at=utc_now(), **values))
    row = (await tx.conn.execute(select(P).where(P.c.id == plan_id))).first()
    assert row is not None
    return _d(row)


async def delete_plan(tx: Tx, plan_id: str) -> None:
    await tx.conn.execute(P.delete().where(P.c.id == plan_id))
