"""User rows and their TOTP recovery codes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from codeyard.domain.errors import NotFound
from codeyard.domain.events import utc_now
from codeyard.domain.git_identity import GitIdentity, for_user
from codeyard.store import schema
from codeyard.store.pages import decode_cursor, page
from codeyard.store.writer import Tx

U = schema.users
RC = schema.recovery_codes


def _d(row: Row[Any]) -> dict[str, Any]:
    return dict(row._mapping)


def public(user: dict[str, Any]) -> dict[str, Any]:
    """What the API shows of a user (no hashes, no secrets)."""
    return {
        "id": user["id"],
        "username": user["username"],
        "role": user["role"],
        "mfa_enabled": user["totp_secret"] is not None,
        "email": user.get("email"),
        "display_name": user.get("display_name"),
        "avatar_url": avatar_url(user),
        "created_at": user["created_at"],
        "updated_at": user["updated_at"],
    }


def avatar_url(user: dict[str, Any]) -> str | None:
    """Where the user's picture is served, versioned by when it was set (None: no picture)."""
    at = user.get("avatar_at")
    if not at:
        return None
    return f"/api/users/{user['id']}/avatar?v={''.join(c for c in at if c.isdigit())}"


async def count(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(U))).scalar_one())


async def count_admins(conn: AsyncConnection) -> int:
    stmt = select(func.count()).select_from(U).where(U.c.role == "admin")
    return int((await conn.execute(stmt)).scalar_one())


async def find(conn: AsyncConnection, user_id: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(U).where(U.c.id == user_id))).first()
    return _d(row) if row else None


async def git_identity(conn: AsyncConnection, user_id: str | None) -> GitIdentity:
    """The identity the commits of ``user_id``'s runs carry (Codeyard's for runs of no user,
    or of a user removed since)."""
    return for_user(await find(conn, user_id) if user_id else None)


async def get(conn: AsyncConnection, user_id: str) -> dict[str, Any]:
    user = await find(conn, user_id)
    if user is None:
        raise NotFound(f"No user '{user_id}'. List users with GET /api/users.")
    return user


async def find_by_name(conn: AsyncConnection, username: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(U).where(U.c.username == username))).first()
    return _d(row) if row else None


async def find_by_email(conn: AsyncConnection, email: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(U).where(U.c.email == email))).first()
    return _d(row) if row else None


async def list_page(
    conn: AsyncConnection, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    stmt = select(U).order_by(U.c.username).limit(limit + 1)
    after = decode_cursor(cursor)
    if after is not None:
        stmt = stmt.where(U.c.username > str(after))
    rows = [_d(r) for r in (await conn.execute(stmt)).all()]
    return page(rows, limit, key=lambda r: r["username"])


async def insert(tx: Tx, values: dict[str, Any]) -> None:
    await tx.conn.execute(U.insert().values(**values))


async def update_user(tx: Tx, user_id: str, **values: Any) -> None:
    await tx.conn.execute(update(U).where(U.c.id == user_id).values(updated_at=utc_now(), **values))


async def remove(tx: Tx, user_id: str) -> None:
    await tx.conn.execute(delete(RC).where(RC.c.user_id == user_id))
    await tx.conn.execute(delete(schema.email_codes).where(schema.email_codes.c.user_id == user_id))
    await tx.conn.execute(delete(schema.avatars).where(schema.avatars.c.user_id == user_id))
    await tx.conn.execute(delete(U).where(U.c.id == user_id))


async def replace_recovery_codes(tx: Tx, user_id: str, digests: list[str]) -> None:
    await tx.conn.execute(delete(RC).where(RC.c.user_id == user_id))
    if digests:
        await tx.conn.execute(RC.insert(), [{"user_id": user_id, "code_hash": d} for d in digests])


async def use_recovery_code(tx: Tx, user_id: str, code_digest: str) -> bool:
    """Mark an unused code as used; False when there is no such unused code."""
    result = await tx.conn.execute(
        update(RC)
        .where(RC.c.user_id == user_id, RC.c.code_hash == code_digest, RC.c.used_at.is_(None))
        .values(used_at=utc_now())
    )
    return bool(result.rowcount)
