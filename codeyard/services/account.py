"""Self-service for a signed-in user: password and two-factor authentication (TOTP)."""

from __future__ import annotations

from typing import Any

from codeyard.auth import passwords, totp
from codeyard.auth.principal import Principal
from codeyard.auth.secrets import digest
from codeyard.domain.errors import BadRequest, Conflict, Forbidden
from codeyard.services import auth, sign_in_limits
from codeyard.services.context import Services
from codeyard.store import sessions, users
from codeyard.store.writer import Tx


async def _user(svc: Services, principal: Principal) -> dict[str, Any]:
    user = await auth.user_of(svc, principal)
    if user is None:
        raise BadRequest(
            "The admin token has no password or two-factor settings; sign in as a user "
            "(create one with POST /api/users or `codeyard users add`)."
        )
    return user


async def _check_password(state: auth.AuthState, user: dict[str, Any], password: str) -> None:
    """Limited per username like sign-in: a stolen session cannot guess the password."""
    await sign_in_limits.guard_password_check(state, user["username"])
    if not passwords.verify_password(user["password_hash"], password):
        await sign_in_limits.password_check_failed(state, user["username"])
        raise Forbidden("The current password is not right.")


async def change_password(
    svc: Services, state: auth.AuthState, principal: Principal, current: str, new: str
) -> dict[str, Any]:
    """Change the caller's password; their other sessions end."""
    user = await _user(svc, principal)
    await _check_password(state, user, current)
    new_hash = passwords.hash_password(new)

    async def job(tx: Tx) -> None:
        await users.update_user(tx, user["id"], password_hash=new_hash)
        await sessions.delete_sessions_of(tx, user["id"], keep=principal.session_id)

    await svc.writer.run(job)
    return users.public(await users_get(svc, user["id"]))


async def users_get(svc: Services, user_id: str) -> dict[str, Any]:
    async with svc.engine.connect() as conn:
        return await users.get(conn, user_id)


async def mfa_setup(svc: Services, principal: Principal) -> dict[str, Any]:
    """A new TOTP secret, pending until ``mfa_verify`` confirms a code from it."""
    user = await _user(svc, principal)
    if user["totp_secret"] is not None:
        raise Conflict(
            "Two-factor authentication is already on; disable it first "
            "(POST /api/auth/mfa/disable) to enrol a new device."
        )
    secret = totp.new_secret()
    sealed = auth.seal_totp(svc, user["id"], secret)
    await svc.writer.run(lambda tx: users.update_user(tx, user["id"], totp_pending=sealed))
    return {"secret": secret, "otpauth_uri": totp.provisioning_uri(secret, user["username"])}


async def mfa_verify(svc: Services, principal: Principal, code: str, now: float) -> dict[str, Any]:
    """Turn TOTP on with a code from the pending secret; returns single-use recovery codes."""
    user = await _user(svc, principal)
    if user["totp_pending"] is None:
        raise Conflict("No two-factor set-up is pending; start with POST /api/auth/mfa/setup.")
    pending = auth.open_totp(svc, user["id"], user["totp_pending"])
    step = totp.accepted_step(pending, code, now, None)
    if step is None:
        raise BadRequest(
            "The code does not match the new secret; check the authenticator app's clock and "
            "send the code it shows now."
        )
    codes = totp.new_recovery_codes()

    async def job(tx: Tx) -> None:
        await users.update_user(
            tx, user["id"], totp_secret=user["totp_pending"], totp_pending=None, totp_last_step=step
        )
        await users.replace_recovery_codes(tx, user["id"], [digest(c) for c in codes])

    await svc.writer.run(job)
    return {"mfa_enabled": True, "recovery_codes": codes}


async def mfa_disable(
    svc: Services, state: auth.AuthState, principal: Principal, password: str
) -> dict[str, Any]:
    user = await _user(svc, principal)
    await _check_password(state, user, password)
    await svc.writer.run(lambda tx: clear_mfa(tx, user["id"]))
    return {"mfa_enabled": False}


async def clear_mfa(tx: Tx, user_id: str) -> None:
    await users.update_user(tx, user_id, totp_secret=None, totp_pending=None, totp_last_step=None)
    await users.replace_recovery_codes(tx, user_id, [])
