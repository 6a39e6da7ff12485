"""Dialect-aware INSERT … ON CONFLICT helpers (SQLite and PostgreSQL speak the same clause)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, bindparam
from sqlalchemy.ext.asyncio import AsyncConnection

from codeyard.store.statement import Statement


def _insert(dialect: str, table: Table) -> Any:
    # The dialect modules are imported here, not at the top: importing PostgreSQL's costs about
    # 90 ms of CPU, a sixth of the server's start-up (issue 15), and a SQLite server never needs it.
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table)


# The statements are built once per shape and kept: they hold no values (the rows are given at
# execution), and building one (``excluded`` makes a copy of the table's columns) cost ~0.4 ms
# of CPU, several times a second while runs work (issue 15).


@functools.cache
def _ignore_stmt(dialect: str, table: Table, key: tuple[str, ...]) -> Any:
    return _insert(dialect, table).on_conflict_do_nothing(index_elements=list(key))


@functools.cache
def _add_stmt(dialect: str, table: Table, key: tuple[str, ...], add: tuple[str, ...]) -> Any:
    stmt = _insert(dialect, table)
    return stmt.on_conflict_do_update(
        index_elements=list(key), set_={c: table.c[c] + stmt.excluded[c] for c in add}
    )


@functools.cache
def _replace_stmt(
    dialect: str, table: Table, key: tuple[str, ...], columns: tuple[str, ...]
) -> Any:
    stmt = _insert(dialect, table)
    return stmt.on_conflict_do_update(
        index_elements=list(key), set_={c: stmt.excluded[c] for c in columns if c not in key}
    )


@functools.lru_cache(maxsize=256)
def _one_row(stmt: Any, columns: tuple[str, ...]) -> Statement[tuple[()]]:
    """One of the statements above for one row of these columns, sent without Core's work
    per execution (``store.statement``): most calls write one row (a cursor, a rollup)."""
    return Statement(stmt.values({c: bindparam(c) for c in columns}))


async def _execute(conn: AsyncConnection, stmt: Any, rows: Sequence[dict[str, Any]]) -> int:
    if len(rows) == 1:
        return await _one_row(stmt, tuple(rows[0])).run(conn, **rows[0])
    result = await conn.execute(stmt, list(rows))
    return int(result.rowcount or 0)


async def insert_ignore(
    conn: AsyncConnection, table: Table, rows: Sequence[dict[str, Any]], key: Sequence[str]
) -> int:
    """Insert rows, skipping those whose ``key`` already exists; returns how many were new."""
    if not rows:
        return 0
    stmt = _ignore_stmt(conn.dialect.name, table, tuple(key))
    return max(0, await _execute(conn, stmt, rows))


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
    stmt = _add_stmt(conn.dialect.name, table, tuple(key), tuple(add))
    await _execute(conn, stmt, rows)


async def upsert_replace(
    conn: AsyncConnection, table: Table, row: dict[str, Any], key: Sequence[str]
) -> None:
    """Insert ``row``; where ``key`` exists, set the stored row's other columns to its values."""
    stmt = _replace_stmt(conn.dialect.name, table, tuple(key), tuple(row))
    await _execute(conn, stmt, [row])
