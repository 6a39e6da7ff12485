"""Profile pictures: one row per user, apart from ``users`` (issue 19)."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from codeyard.store import schema
from codeyard.store.writer import Tx

A = schema.avatars


async def put(tx: Tx, user_id: str, media_type: str, data: bytes) -> None:
    await tx.conn.execute(delete(A).where(A.c.user_id == user_id))
    await tx.conn.execute(A.insert().values(user_id=user_id, media_type=media_type, data=data))


async def drop(tx: Tx, user_id: str) -> None:
    await tx.conn.execute(delete(A).where(A.c.user_id == user_id))


async def get(conn: AsyncConnection, user_id: str) -> tuple[str, bytes] | None:
    row = (
        await conn.execute(select(A.c.media_type, A.c.data).where(A.c.user_id == user_id))
    ).first()
    return (str(row.media_type), bytes(row.data)) if row else None
