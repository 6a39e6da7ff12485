"""Env sets: named, encrypted groups of environment variables for agent processes.

Rows hold the variable names in clear (``keys``, for listings) and the values only as the
AES-GCM ciphertext of a JSON object, bound to the row id. Decrypted values leave this module
only through :func:`variables_of` and :func:`environment_for`.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Row, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from codeyard.crypto import SecretBox
from codeyard.domain.errors import NotFound, ValidationFailed
from codeyard.store import schema
from codeyard.store.pages import decode_cursor, page
from codeyard.store.writer import Tx

__all__ = [
    "delete_env_set",
    "environment_for",
    "find_by_name",
    "get",
    "insert",
    "list_env_sets",
    "owners_of",
    "seal",
    "update_env_set",
    "variables_of",
]

E = schema.env_sets


def _d(row: Row[Any]) -> dict[str, Any]:
    return dict(row._mapping)


def seal(box: SecretBox, env_set_id: str, variables: dict[str, str]) -> str:
    """The ciphertext column value for ``variables`` of env set ``env_set_id``."""
    return box.encrypt(json.dumps(variables, sort_keys=True).encode(), env_set_id)


def variables_of(box: SecretBox, row: dict[str, Any]) -> dict[str, str]:
    """The decrypted variables of a row (raises ``SecretsUnavailable`` on a key mismatch)."""
    data: dict[str, str] = json.loads(box.decrypt(row["ciphertext"], row["id"]))
    return data


async def get(conn: AsyncConnection, env_set_id: str) -> dict[str, Any]:
    row = (await conn.execute(select(E).where(E.c.id == env_set_id))).first()
    if row is None:
        raise NotFound(
            f"Env set '{env_set_id}' does not exist. List them with GET /api/env-sets.",
            env_set_id=env_set_id,
        )
    return _d(row)


async def find_by_name(conn: AsyncConnection, name: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(E).where(E.c.name == name))).first()
    return _d(row) if row is not None else None


async def owners_of(conn: AsyncConnection, ids: list[str]) -> dict[str, str | None]:
    """id → ``owner_id`` of the env sets among ``ids`` that exist."""
    if not ids:
        return {}
    rows = (await conn.execute(select(E.c.id, E.c.owner_id).where(E.c.id.in_(ids)))).all()
    return {r.id: r.owner_id for r in rows}


async def list_env_sets(
    conn: AsyncConnection, limit: int, cursor: str | None, only_owner: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest first, keyset-paged by (created_at, id); ``only_owner``: that user's sets only."""
    stmt = select(E).order_by(E.c.created_at.desc(), E.c.id.desc()).limit(limit + 1)
    if only_owner is not None:
        stmt = stmt.where(E.c.owner_id == only_owner)
    after = decode_cursor(cursor)
    if after is not None:
        stmt = stmt.where(
            (E.c.created_at < after[0]) | ((E.c.created_at == after[0]) & (E.c.id < after[1]))
        )
    rows = [_d(r) for r in (await conn.execute(stmt)).all()]
    return page(rows, limit, key=lambda r: [r["created_at"], r["id"]])


async def insert(tx: Tx, values: dict[str, Any]) -> None:
    await tx.conn.execute(E.insert().values(**values))


async def update_env_set(tx: Tx, env_set_id: str, values: dict[str, Any]) -> None:
    await tx.conn.execute(update(E).where(E.c.id == env_set_id).values(**values))


async def delete_env_set(tx: Tx, env_set_id: str) -> None:
    await tx.conn.execute(delete(E).where(E.c.id == env_set_id))


async def environment_for(conn: AsyncConnection, box: SecretBox, ids: list[str]) -> dict[str, str]:
    """The merged variables of env sets ``ids`` (later sets win); 422 naming a missing set."""
    if not ids:
        return {}
    rows = {r.id: _d(r) for r in (await conn.execute(select(E).where(E.c.id.in_(ids)))).all()}
    if missing := [i for i in ids if i not in rows]:
        raise ValidationFailed(
            f"Env sets {', '.join(missing)} no longer exist; remove them from the agent profile "
            "or run, or create them again.",
            errors=[{"loc": ["env_set_ids"], "msg": f"unknown: {missing}"}],
        )
    env: dict[str, str] = {}
    for env_set_id in dict.fromkeys(ids):
        env.update(variables_of(box, rows[env_set_id]))
    return env
