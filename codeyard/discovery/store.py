"""Discovery conversation rows (plain dicts)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from codeyard.domain.errors import NotFound
from codeyard.domain.events import utc_now
from codeyard.store import schema
from codeyard.store.pages import newest_first, page
from codeyard.store.writer import Tx

D = schema.discoveries


def _d(row: Row[Any]) -> dict[str, Any]:
    return dict(row._mapping)


async def get_conversation(
    conn: AsyncConnection, project: dict[str, Any], conversation_id: str
) -> dict[str, Any]:
    stmt = select(D).where((D.c.id == conversation_id) & (D.c.project_id == project["id"]))
    row = (await conn.execute(stmt)).first()
    if row is None:
        raise NotFound(
            f"No discovery conversation '{conversation_id}' in project '{project['slug']}'. "
            f"List them with GET /api/projects/{project['slug']}/discover/conversations."
        )
    return _d(row)


async def list_conversations(
    conn: AsyncConnection, project_id: str, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first; ``cursor`` is the last ``[created_at, id]`` seen."""
    stmt = select(D).where(D.c.project_id == project_id)
    stmt = newest_first(stmt, D, cursor, limit)
    rows = [_d(r) for r in (await conn.execute(stmt)).all()]
    return page(rows, limit, key=lambda r: [r["created_at"], r["id"]])


async def insert(tx: Tx, values: dict[str, Any]) -> None:
    await tx.conn.execute(D.insert().values(**values))


async def update_conversation(tx: Tx, conversation_id: str, values: dict[str, Any]) -> None:
    await tx.conn.execute(
        update(D).where(D.c.id == conversation_id).values(updated_at=utc_now(), **values)
    )


async def delete(tx: Tx, conversation_id: str) -> None:
    await tx.conn.execute(D.delete().where(D.c.id == conversation_id))
