"""Stored settings: key → JSON value. Keys not stored fall back to the configured defaults.

One row per key (not one wide row) so that a setting added later needs no migration, and a PUT
that changes one value touches one row.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from codeyard.domain.events import utc_now
from codeyard.store import schema
from codeyard.store.writer import Tx

T = schema.settings


async def load(conn: AsyncConnection) -> dict[str, Any]:
    """Every stored setting (absent keys are simply missing)."""
    rows = (await conn.execute(select(T.c.key, T.c.value))).all()
    return {row.key: row.value for row in rows}


async def save(tx: Tx, values: dict[str, Any]) -> None:
    """Store ``values`` (insert or replace each key) inside a writer job."""
    now = utc_now()
    for key, value in values.items():
        await tx.conn.execute(delete(T).where(T.c.key == key))
        await tx.conn.execute(T.insert().values(key=key, value=value, updated_at=now))
