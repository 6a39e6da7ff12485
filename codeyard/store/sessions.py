"""Sign-in sessions and personal access tokens (both stored by digest only)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from codeyard.domain.errors import NotFound
from codeyard.store import schema
from codeyard.store.writer import Tx

S = schema.sessions
T = schema.api_tokens


def _d(row: Row[Any]) -> dict[str, Any]:
    return dict(row._mapping)


async def find_session(conn: AsyncConnection, secret_hash: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(S).where(S.c.secret_hash == secret_hash))).first()
    return _d(row) if row else None


async def insert_session(tx: Tx, values: dict[str, Any]) -> None:
    await tx.conn.execute(S.insert().values(**values))


async def touch_session(tx: Tx, session_id: str, now: str) -> None:
    await tx.conn.execute(update(S).where(S.c.id == session_id).values(last_seen_at=now))


async def delete_session(tx: Tx, session_id: str) -> None:
    await tx.conn.execute(delete(S).where(S.c.id == session_id))


async def delete_sessions_of(tx: Tx, user_id: str | None, keep: str | None = None) -> int:
    """Every session of a user (``None``: the admin token's), except ``keep``; returns how many."""
    cond = S.c.user_id.is_(None) if user_id is None else S.c.user_id == user_id
    stmt = delete(S).where(cond)
    if keep is not None:
        stmt = stmt.where(S.c.id != keep)
    return int((await tx.conn.execute(stmt)).rowcount or 0)


async def delete_expired_sessions(tx: Tx, now: str, idle_before: str) -> None:
    await tx.conn.execute(
        delete(S).where((S.c.expires_at <= now) | (S.c.last_seen_at < idle_before))
    )


async def sessions_of(conn: AsyncConnection, user_id: str | None) -> list[dict[str, Any]]:
    """A user's sessions (None: the admin token's), newest first, without their hashes."""
    S = schema.sessions
    owner = S.c.user_id.is_(None) if user_id is None else S.c.user_id == user_id
    stmt = (
        select(S.c.id, S.c.user_agent, S.c.created_at, S.c.last_seen_at, S.c.expires_at)
        .where(owner)
        .order_by(S.c.created_at.desc())
    )
    return [dict(r._mapping) for r in (await conn.execute(stmt)).all()]


async def find_token(conn: AsyncConnection, secret_hash: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(T).where(T.c.secret_hash == secret_hash))).first()
    return _d(row) if row else None


async def tokens_of(conn: AsyncConnection, user_id: str | None) -> list[dict[str, Any]]:
    cond = T.c.user_id.is_(None) if user_id is None else T.c.user_id == user_id
    rows = (await conn.execute(select(T).where(cond).order_by(T.c.created_at))).all()
    return [_d(r) for r in rows]


async def get_token(conn: AsyncConnection, token_id: str) -> dict[str, Any]:
    row = (await conn.execute(select(T).where(T.c.id == token_id))).first()
    if row is None:
        raise NotFound(f"No token '{token_id}'. List your tokens with GET /api/tokens.")
    return _d(row)


async def insert_token(tx: Tx, values: dict[str, Any]) -> None:
    await tx.conn.execute(T.insert().values(**values))


async def touch_token(tx: Tx, token_id: str, now: str) -> None:
    await tx.conn.execute(update(T).where(T.c.id == token_id).values(last_used_at=now))


async def delete_token(tx: Tx, token_id: str) -> None:
    await tx.conn.execute(delete(T).where(T.c.id == token_id))


async def token_lineage(conn: AsyncConnection, token_id: str) -> list[str]:
    """``token_id`` and every token created from it, directly or through its descendants."""
    found, frontier = [token_id], [token_id]
    while frontier:
        rows = (await conn.execute(select(T.c.id).where(T.c.parent_id.in_(frontier)))).all()
        frontier = [r.id for r in rows if r.id not in found]
        found.extend(frontier)
    return found


async def revoke_tokens(tx: Tx, token_ids: list[str]) -> None:
    """Delete the tokens and every session opened with them (token-login)."""
    await tx.conn.execute(delete(S).where(S.c.token_id.in_(token_ids)))
    await tx.conn.execute(delete(T).where(T.c.id.in_(token_ids)))


async def delete_tokens_of(tx: Tx, user_id: str) -> None:
    await tx.conn.execute(delete(T).where(T.c.user_id == user_id))


def public_token(row: dict[str, Any]) -> dict[str, Any]:
    return {
        k: row[k]
        for k in ("id", "name", "prefix", "scopes", "expires_at", "last_used_at", "created_at")
    }
