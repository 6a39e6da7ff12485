"""One-time sign-in codes sent by email: digests, expiry and wrong guesses (issue 19)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from codeyard.store import schema
from codeyard.store.writer import Tx

C = schema.email_codes


async def replace(tx: Tx, values: dict[str, Any]) -> None:
    """The user's one live code: a new request voids the ones sent before."""
    await tx.conn.execute(delete(C).where(C.c.user_id == values["user_id"]))
    await tx.conn.execute(C.insert().values(**values))


async def current(conn: AsyncConnection, user_id: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(C).where(C.c.user_id == user_id))).first()
    return dict(row._mapping) if row else None


async def count_attempt(tx: Tx, code_id: str) -> None:
    await tx.conn.execute(update(C).where(C.c.id == code_id).values(attempts=C.c.attempts + 1))


async def take(tx: Tx, code_id: str) -> bool:
    """Use the code up; False when another request used it first (single use)."""
    return bool((await tx.conn.execute(delete(C).where(C.c.id == code_id))).rowcount)


async def drop_of(tx: Tx, user_id: str) -> None:
    await tx.conn.execute(delete(C).where(C.c.user_id == user_id))
