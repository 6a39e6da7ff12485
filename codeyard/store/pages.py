"""Opaque cursors for keyset pagination (``?cursor=`` / ``next_cursor``)."""

from __future__ import annotations

import base64
import json
from typing import Any

from sqlalchemy import Select, Table

from codeyard.domain.errors import BadRequest


def encode_cursor(key: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps({"k": key}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> Any:
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return json.loads(raw)["k"]
    except (ValueError, KeyError, TypeError) as exc:
        raise BadRequest(
            "The cursor is not valid; pass the next_cursor value from a previous page."
        ) from exc


def page(rows: list[Any], limit: int, key: Any) -> tuple[list[Any], str | None]:
    """Split ``limit + 1`` fetched rows into a page and the cursor for the next one."""
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, encode_cursor(key(rows[-1]))
    return rows, None


def newest_first(stmt: Select[Any], table: Table, cursor: str | None, limit: int) -> Select[Any]:
    """``stmt`` ordered newest first by ``(created_at, id)``, after the ``cursor`` of the last
    page, fetching ``limit + 1`` rows for :func:`page` (key ``[created_at, id]``)."""
    after = decode_cursor(cursor)
    if after is not None:
        created, last_id = str(after[0]), str(after[1])
        stmt = stmt.where(
            (table.c.created_at < created)
            | ((table.c.created_at == created) & (table.c.id < last_id))
        )
    return stmt.order_by(table.c.created_at.desc(), table.c.id.desc()).limit(limit + 1)
