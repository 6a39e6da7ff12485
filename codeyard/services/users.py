"""Users (admin) and personal access tokens (each caller their own)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from codeyard.auth import passwords
from codeyard.auth.principal import Principal
from codeyard.auth.scopes import SCOPES, expand, unknown
from codeyard.auth.secrets import PAT_PREFIX, digest, display_prefix, new_secret
from codeyard.config import Settings
from codeyard.domain.errors import Conflict, Forbidden, NotFound, ValidationFailed
from codeyard.domain.ids import new_id
from codeyard.services import auth
from codeyard.services.account import clear_mfa
from codeyard.services.context import Services
from codeyard.store import audit, sessions, users
from codeyard.store.db import create_engine, migrate
from codeyard.store.writer import Tx, Writer


async def create_user(svc: Services, username: str, password: str, role: str) -> dict[str, Any]:
    values = auth.new_user_values(username, password, role)

    async def job(tx: Tx) -> None:
        if await users.find_by_name(tx.conn, values["username"]) is not None:
            raise Conflict(f"A user named '{values['username']}' exists already.")
        await users.insert(tx, values)

    await svc.writer.run(job)
    return users.public(values)


async def list_users(
    svc: Services, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    async with svc.engine.connect() as conn:
        rows, next_cursor = await users.list_page(conn, limit, cursor)
    return [users.public(r) for r in rows], next_cursor


async def find_user(svc: Services, ref: str) -> dict[str, Any]:
    """A user by id (``usr_…``) or username."""
    async with svc.engine.connect() as conn:
        user = await users.find(conn, ref) or await users.find_by_name(conn, ref.lower())
    if user is None:
        raise NotFound(f"No user '{ref}'. List users with GET /api/users.")
    return user


async def _keep_an_admin(tx: Tx, user: dict[str, Any]) -> None:
    if user["role"] == "admin" and await users.count_admins(tx.conn) <= 1:
        raise Conflict(
            f"'{user['username']}' is the last admin; make another user admin first.",
        )


async def update_user(
    svc: Services, ref: str, changes: dict[str, Any], actor: str = "admin"
) -> dict[str, Any]:
    """Change ``role``, ``email`` and/or set a new ``password`` (which ends the user's
    sessions). A role change (``user.role``) and a new password (``user.password_reset``)
    leave an audit row in the same transaction, and the last admin cannot be demoted (409)."""
    user = await find_user(svc, ref)
    values: dict[str, Any] = {}
    if changes.get("role") is not None:
        values["role"] = changes["role"]
    if changes.get("password") is not None:
        values["password_hash"] = passwords.hash_password(changes["password"])
    if "email" in changes:
        values["email"] = changes["email"].strip().lower() if changes["email"] else None

    async def job(tx: Tx) -> dict[str, Any]:
        current = await users.get(tx.conn, user["id"])
        if values.get("role", current["role"]) != "admin":
            await _keep_an_admin(tx, current)
        if values.get("email"):
            holder = await users.find_by_email(tx.conn, values["email"])
            if holder is not None and holder["id"] != user["id"]:
                raise Conflict(f"Another user has the email '{values['email']}'.")
        if values:
            await users.update_user(tx, user["id"], **values)
        if "password_hash" in values:
            await sessions.delete_sessions_of(tx, user["id"])
            # Who reset whose password (never the password), like an MFA reset.
            details = {"username": current["username"]}
            await audit.record(tx, actor, "user.password_reset", user["id"], details)
        if values.get("role", current["role"]) != current["role"]:
            change = {"username": current["username"], "old": current["role"]}
            await audit.record(
                tx, actor, "user.role", user["id"], {**change, "new": values["role"]}
            )
        return await users.get(tx.conn, user["id"])

    return users.public(await svc.writer.run(job))


async def delete_user(svc: Services, ref: str) -> None:
    """Remove a user with their sessions and tokens; runs they created keep ``created_by``."""
    user = await find_user(svc, ref)

    async def job(tx: Tx) -> None:
        await _keep_an_admin(tx, user)
        await sessions.delete_sessions_of(tx, user["id"])
        await sessions.delete_tokens_of(tx, user["id"])
        await users.remove(tx, user["id"])

    await svc.writer.run(job)


async def reset_mfa(svc: Services, ref: str) -> dict[str, Any]:
    """Turn a user's two-factor authentication off and end their sessions, in the running
    server (the CLI's Unix socket, ``codeyard.cli_socket``: never an HTTP route)."""
    user = await find_user(svc, ref)

    async def job(tx: Tx) -> dict[str, Any]:
        await clear_mfa(tx, user["id"])
        await sessions.delete_sessions_of(tx, user["id"])
        await audit.record(tx, "cli-socket", "user.mfa_reset", user["id"], {})
        return await users.get(tx.conn, user["id"])

    return users.public(await svc.writer.run(job))


async def reset_mfa_offline(settings: Settings, ref: str) -> dict[str, Any]:
    """Turn a user's two-factor authentication off and end their sessions.

    For ``codeyard users reset-mfa`` only: it opens the database directly, so it needs access
    to the server's data, never an HTTP route.
    """
    engine = create_engine(settings.resolved_database_url)
    try:
        await migrate(engine)
        async with engine.connect() as conn:
            user = await users.find(conn, ref) or await users.find_by_name(conn, ref.lower())
        if user is None:
            raise NotFound(f"No user '{ref}'. List users with `codeyard users list`.")
        writer = Writer(engine, lambda _events: None)
        await writer.start()
        try:

            async def job(tx: Tx) -> dict[str, Any]:
                await clear_mfa(tx, user["id"])
                await sessions.delete_sessions_of(tx, user["id"])
                return await users.get(tx.conn, user["id"])

            return users.public(await writer.run(job))
        finally:
            await writer.stop()
    finally:
        await engine.dispose()


# --- personal access tokens -------------------------------------------------------------------


async def create_token(
    svc: Services,
    principal: Principal,
    name: str,
    scopes: list[str],
    expires_at: datetime | None,
) -> dict[str, Any]:
    """A token for the caller; it can never hold a scope the caller lacks. Secret shown once.

    A token created with a token (or a session opened from one with token-login) is that
    token's child: it never expires later than its parent (no ``expires_at`` inherits the
    parent's; a later one is refused) and revoking the parent revokes it.
    """
    if bad := unknown(scopes):
        raise ValidationFailed(
            f"Unknown scopes: {', '.join(bad)}. Valid scopes: {', '.join(SCOPES)}.",
            errors=[{"loc": ["body", "scopes"], "msg": f"unknown: {bad}"}],
        )
    if not scopes:
        raise ValidationFailed(
            "A token needs at least one scope.",
            errors=[{"loc": ["body", "scopes"], "msg": "must not be empty"}],
        )
    if missing := sorted(expand(scopes) - principal.scopes):
        raise Forbidden(
            f"A token cannot hold scopes its creator lacks: {', '.join(missing)}.",
        )
    now = time.time()
    if expires_at is not None and expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    if expires_at is not None and expires_at.timestamp() <= now:
        raise ValidationFailed(
            "expires_at is in the past.",
            errors=[{"loc": ["body", "expires_at"], "msg": "must be in the future"}],
        )
    expires = expires_at.timestamp() if expires_at is not None else None
    if principal.token_id is not None:
        async with svc.engine.connect() as conn:
            parent = await sessions.get_token(conn, principal.token_id)
        if parent["expires_at"] is not None:
            cap = auth.parse_stamp(parent["expires_at"])
            if expires is not None and expires > cap:
                raise ValidationFailed(
                    f"expires_at is later than the expiry of the token this one is created "
                    f"with ({parent['expires_at']}); a token cannot outlive its parent. Leave "
                    "expires_at out to inherit it, or sign in with a password.",
                    errors=[{"loc": ["body", "expires_at"], "msg": "after the parent's expiry"}],
                )
            expires = cap if expires is None else expires
    secret = new_secret(PAT_PREFIX)
    values = {
        "id": new_id("tok"),
        "user_id": principal.user_id,
        "name": name,
        "prefix": display_prefix(secret),
        "secret_hash": digest(secret),
        "scopes": sorted(set(scopes)),
        "expires_at": auth.stamp(expires) if expires is not None else None,
        "last_used_at": None,
        "created_at": auth.stamp(now),
        "parent_id": principal.token_id,
    }
    await svc.writer.run(lambda tx: sessions.insert_token(tx, values))
    return {**sessions.public_token(values), "token": secret}


async def list_tokens(svc: Services, principal: Principal) -> list[dict[str, Any]]:
    async with svc.engine.connect() as conn:
        rows = await sessions.tokens_of(conn, principal.user_id)
    return [sessions.public_token(r) for r in rows]


async def delete_token(svc: Services, principal: Principal, token_id: str) -> None:
    """Revoke one of the caller's tokens (an admin may revoke anyone's), with the tokens
    created from it and every session opened with any of them."""
    async with svc.engine.connect() as conn:
        row = await sessions.get_token(conn, token_id)
    if row["user_id"] != principal.user_id and not principal.is_admin:
        raise NotFound(f"No token '{token_id}'. List your tokens with GET /api/tokens.")

    async def job(tx: Tx) -> None:
        await sessions.revoke_tokens(tx, await sessions.token_lineage(tx.conn, token_id))

    await svc.writer.run(job)
