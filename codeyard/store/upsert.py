"""Dialect-aware INSERT … ON CONFLICT helpers (SQLite and PostgreSQL speak the same clause)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection


def _insert(conn: AsyncConnection, table: Table) -> Any:
    # The dialect modules are imported here, not at the top: importing PostgreSQL's costs about
    # 90 ms of CPU, a sixth of the server's start-up (issue 15), and a SQLite server never needs it.
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table)


async def insert_ignore(
    conn: AsyncConnection, table: Table, rows: Sequence[dict[str, Any]], key: Sequence[str]
) -> int:
    """Insert rows, skipping those whose ``key`` already exists; returns how many were new."""
    if not rows:
        return 0
    stmt = _insert(conn, table).on_conflict_do_nothing(index_elements=list(key))
    result = await conn.execute(stmt, list(rows))
    return int(result.rowcount or 0)


async def upsert_add(
    conn: AsyncConnection,
    table: Table,
    rows: Sequence[dict[str, Any]],
    key: Sequence[str],
    add: Sequence[str],
) -> None:
    """Insert rows; where ``key`` exists, add the ``add`` columns to the stored values."""
    if not rows:
        return
    stmt = _insert(conn, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(key), set_={c: table.c[c] + stmt.excluded[c] for c in add}
    )
    await conn.execute(stmt, list(rows))


async def upsert_replace(
    conn: AsyncConnection, table: Table, row: dict[str, Any], key: Sequence[str]
) -> None:
    """Insert ``row``; where ``key`` exists, set the stored row's other columns to its values."""
    stmt = _insert(conn, table)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(key), set_={c: stmt.excluded[c] for c in row if c not in key}
    )
    await conn.execute(stmt, row)
