"""Authentication use cases: resolve a caller, sign in and out, first-run setup, sessions.

Credentials: the admin token, personal access tokens (``cy_pat_…``) and session cookies. Every
secret is stored as a digest and compared in constant time. Failed sign-ins are counted per
client address and per username (``sign_in_limits``).
"""

from __future__ import annotations

import secrets as stdlib_secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from codeyard.auth import passwords, totp
from codeyard.auth.principal import ADMIN, Principal
from codeyard.auth.ratelimit import FailureLimiter
from codeyard.auth.scopes import ALL, effective, expand, for_role
from codeyard.auth.secrets import PAT_PREFIX, digest, matches, new_secret, same
from codeyard.cluster.failures import SharedFailures
from codeyard.crypto import secret_box
from codeyard.domain.errors import Conflict, Forbidden, NotFound, Unauthorized
from codeyard.domain.ids import new_id
from codeyard.services import sign_in_limits as limits
from codeyard.services.context import Services
from codeyard.store import checkpoints, policies, runs, sessions, users
from codeyard.store.writer import Tx

SESSION_COOKIE = "codeyard_session"
CSRF_COOKIE = "codeyard_csrf"
#: ``last_seen_at`` / ``last_used_at`` are written at most this often per session or token.
TOUCH_SECONDS = 60.0
_SETUP_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def stamp(epoch: float) -> str:
    """An epoch time in the stored timestamp format (``2026-11-22T08:00:00.000Z``)."""
    whole = datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{whole}.{int((epoch - int(epoch)) * 1000):03d}Z"


def parse_stamp(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def new_setup_code() -> str:
    chars = "".join(stdlib_secrets.choice(_SETUP_ALPHABET) for _ in range(12))
    return "-".join(chars[i : i + 4] for i in range(0, 12, 4))


@dataclass
class AuthState:
    """Per-process authentication state, wired once by ``app.py``."""

    admin_token: str
    session_idle_seconds: float
    session_max_seconds: float
    setup_code: str = field(default_factory=new_setup_code)
    limiter: FailureLimiter = field(default_factory=FailureLimiter)
    #: Set on PostgreSQL: failures counted for every API server of the database instead.
    shared: SharedFailures | None = None
    #: Wall clock (epoch seconds); tests move it to expire sessions and links.
    clock: Callable[[], float] = time.time

    def now(self) -> float:
        return self.clock()


@dataclass(frozen=True, slots=True)
class NewSession:
    """A session just opened: the cookie values, shown to the client once."""

    secret: str
    csrf: str
    max_age: int
    user: dict[str, Any] | None


class _NoRun:
    def __repr__(self) -> str:
        return "NO_RUN"


NO_RUN: Any = _NoRun()


# --- resolving a caller -------------------------------------------------------------------


async def _user_or_401(svc: Services, user_id: str) -> dict[str, Any]:
    async with svc.engine.connect() as conn:
        user = await users.find(conn, user_id)
    if user is None:
        raise Unauthorized("The user of this credential no longer exists.")
    return user


async def principal_for_token(svc: Services, state: AuthState, token: str) -> Principal:
    """The admin token or a personal access token; 401 for anything else."""
    if same(token, state.admin_token):
        return ADMIN
    invalid = Unauthorized(
        "The token is not valid. Use the admin token from <data-dir>/admin.token or a personal "
        "access token (POST /api/tokens)."
    )
    if not token.startswith(PAT_PREFIX):
        raise invalid
    async with svc.engine.connect() as conn:
        row = await sessions.find_token(conn, digest(token))
    if row is None:
        raise invalid
    now = state.now()
    if row["expires_at"] is not None and row["expires_at"] <= stamp(now):
        raise Unauthorized(
            f"The token '{row['name']}' expired at {row['expires_at']}; create a new one."
        )
    if row["last_used_at"] is None or parse_stamp(row["last_used_at"]) < now - TOUCH_SECONDS:
        await svc.writer.run(lambda tx: sessions.touch_token(tx, row["id"], stamp(now)))
    if row["user_id"] is None:
        return Principal("token", "admin", expand(row["scopes"]), token_id=row["id"])
    user = await _user_or_401(svc, row["user_id"])
    return Principal(
        "token",
        user["username"],
        effective(row["scopes"], user["role"]),
        user_id=user["id"],
        role=user["role"],
        token_id=row["id"],
    )


async def principal_for_session(
    svc: Services, state: AuthState, secret: str
) -> tuple[Principal, str]:
    """The caller of a session cookie and the session's CSRF digest; 401 when ended."""
    async with svc.engine.connect() as conn:
        row = await sessions.find_session(conn, digest(secret))
    if row is None:
        raise Unauthorized("The session has ended (signed out or revoked); sign in again.")
    now = state.now()
    idle_limit = stamp(now - state.session_idle_seconds)
    if row["expires_at"] <= stamp(now) or row["last_seen_at"] < idle_limit:
        await svc.writer.run(lambda tx: sessions.delete_session(tx, row["id"]))
        raise Unauthorized("The session expired; sign in again.")
    if parse_stamp(row["last_seen_at"]) < now - TOUCH_SECONDS:
        await svc.writer.run(lambda tx: sessions.touch_session(tx, row["id"], stamp(now)))
    token_id = row.get("token_id")
    if row["user_id"] is None:
        scopes = ALL if row["scopes"] is None else expand(row["scopes"])
        principal = Principal("session", "admin", scopes, session_id=row["id"], token_id=token_id)
        return principal, row["csrf_hash"]
    user = await _user_or_401(svc, row["user_id"])
    role = user["role"]
    scopes = for_role(role) if row["scopes"] is None else effective(row["scopes"], role)
    principal = Principal(
        "session",
        user["username"],
        scopes,
        user_id=user["id"],
        role=role,
        session_id=row["id"],
        token_id=token_id,
    )
    return principal, row["csrf_hash"]


def csrf_matches(sent: str, csrf_hash: str) -> bool:
    return matches(sent, csrf_hash)


async def run_owner(svc: Services, params: Mapping[str, Any]) -> Any:
    """``created_by`` of the run a path names (by run, approval or checkpoint), else NO_RUN."""
    async with svc.engine.connect() as conn:
        run_ref = params.get("run_ref")
        if run_ref is None:
            try:
                if "approval_id" in params:
                    run_ref = (await policies.get_approval(conn, params["approval_id"]))["run_id"]
                elif "checkpoint_id" in params:
                    run_ref = (await checkpoints.get(conn, params["checkpoint_id"]))["run_id"]
            except NotFound:
                return NO_RUN
        if run_ref is None:
            return NO_RUN
        run = await runs.find(conn, str(run_ref))
    return NO_RUN if run is None else run["created_by"]


# --- signing in -------------------------------------------------------------------------------


async def open_session(
    svc: Services,
    state: AuthState,
    user: dict[str, Any] | None,
    scopes: list[str] | None = None,
    user_agent: str | None = None,
    token: dict[str, Any] | None = None,
) -> NewSession:
    """A new session; one opened with a token (``token``) ends when the token expires and is
    deleted when the token is revoked."""
    secret, csrf = new_secret(), new_secret()
    now = state.now()
    expires = now + state.session_max_seconds
    if token is not None and token["expires_at"] is not None:
        expires = min(expires, parse_stamp(token["expires_at"]))
    values = {
        "id": new_id("ses"),
        "secret_hash": digest(secret),
        "csrf_hash": digest(csrf),
        "user_id": user["id"] if user else None,
        "scopes": scopes,
        "user_agent": (user_agent or "")[:300] or None,
        "created_at": stamp(now),
        "last_seen_at": stamp(now),
        "expires_at": stamp(expires),
        "token_id": token["id"] if token is not None else None,
    }

    async def job(tx: Tx) -> None:
        idle_before = stamp(now - state.session_idle_seconds)
        await sessions.delete_expired_sessions(tx, stamp(now), idle_before)
        await sessions.insert_session(tx, values)

    await svc.writer.run(job)
    public = users.public(user) if user else None
    return NewSession(secret, csrf, max(1, int(expires - now)), public)


def seal_totp(svc: Services, user_id: str, secret: str) -> str:
    """A TOTP secret as stored: AES-GCM with the data dir's key, bound to its user."""
    return secret_box(svc.settings.secret_key_path).encrypt(secret.encode(), f"totp:{user_id}")


def open_totp(svc: Services, user_id: str, sealed: str) -> str:
    return secret_box(svc.settings.secret_key_path).decrypt(sealed, f"totp:{user_id}").decode()


async def _check_second_factor(
    svc: Services, state: AuthState, user: dict[str, Any], code: str
) -> bool:
    """A TOTP code (not a replay) or an unused recovery code; records its use."""
    secret = open_totp(svc, user["id"], user["totp_secret"])
    step = totp.accepted_step(secret, code, state.now(), user["totp_last_step"])
    if step is not None:

        async def take_step(tx: Tx) -> bool:
            fresh = await users.get(tx.conn, user["id"])  # serialized: no double use
            if fresh["totp_last_step"] is not None and step <= fresh["totp_last_step"]:
                return False
            await users.update_user(tx, user["id"], totp_last_step=step)
            return True

        return await svc.writer.run(take_step)
    if totp.looks_like_recovery_code(code):
        code_digest = digest(totp.normalize_recovery_code(code))
        return await svc.writer.run(lambda tx: users.use_recovery_code(tx, user["id"], code_digest))
    return False


check_second_factor = _check_second_factor


async def login(
    svc: Services,
    state: AuthState,
    client: str,
    username: str,
    password: str,
    totp_code: str | None,
    user_agent: str | None,
) -> NewSession:
    await limits.guard(state, client, username)
    async with svc.engine.connect() as conn:
        user = await users.find_by_name(conn, username.strip().lower())
    if not passwords.verify_password(user["password_hash"] if user else None, password):
        await limits.failed(state, client, username)
        raise Unauthorized("The username or password is not right.")
    assert user is not None
    if user["totp_secret"] is not None:
        if not totp_code:
            raise Unauthorized(
                "This account uses two-factor authentication: send 'totp_code' (from the "
                "authenticator app, or a recovery code) with the password.",
                mfa_required=True,
            )
        if not await _check_second_factor(svc, state, user, totp_code):
            await limits.failed(state, client, username)
            raise Unauthorized(
                "The two-factor code is not valid, or was already used; wait for the next code.",
                mfa_required=True,
            )
    await limits.reset_failures(state, limits.username_key(username))
    return await open_session(svc, state, user, None, user_agent)


async def token_login(
    svc: Services, state: AuthState, client: str, token: str, user_agent: str | None
) -> NewSession:
    """A session for the holder of the admin token or a personal access token."""
    await limits.guard(state, client)
    try:
        principal = await principal_for_token(svc, state, token)
    except Unauthorized:
        await limits.failed(state, client)
        raise
    user = await _user_or_401(svc, principal.user_id) if principal.user_id else None
    scopes = None if principal.kind == "admin_token" else sorted(principal.scopes)
    row = None
    if principal.token_id is not None:
        async with svc.engine.connect() as conn:
            row = await sessions.get_token(conn, principal.token_id)
    return await open_session(svc, state, user, scopes, user_agent, token=row)


async def setup_required(svc: Services) -> bool:
    async with svc.engine.connect() as conn:
        return await users.count(conn) == 0


async def setup(
    svc: Services,
    state: AuthState,
    client: str,
    code: str,
    username: str,
    password: str,
    user_agent: str | None,
) -> NewSession:
    """Create the first admin with the setup code printed at start (first run only)."""
    if not await setup_required(svc):
        raise Conflict("Set-up is done: a user exists already. Sign in with POST /api/auth/login.")
    await limits.guard(state, client)
    given = code.strip().upper().replace("-", "").replace(" ", "")
    if not same(given, state.setup_code.replace("-", "")):
        await limits.failed(state, client)
        raise Forbidden(
            "The setup code is not right: use the one `codeyard serve` printed at start."
        )
    values = new_user_values(username, password, "admin")

    async def job(tx: Tx) -> None:
        if await users.count(tx.conn):
            raise Conflict("Set-up is done: a user exists already.")
        await users.insert(tx, values)

    await svc.writer.run(job)
    return await open_session(svc, state, values, None, user_agent)


def new_user_values(username: str, password: str, role: str) -> dict[str, Any]:
    now = stamp(time.time())
    return {
        "id": new_id("usr"),
        "username": username.strip().lower(),
        "password_hash": passwords.hash_password(password),
        "role": role,
        "totp_secret": None,
        "totp_pending": None,
        "totp_last_step": None,
        "created_at": now,
        "updated_at": now,
    }


async def logout(svc: Services, principal: Principal) -> None:
    if principal.session_id is not None:
        session_id = principal.session_id
        await svc.writer.run(lambda tx: sessions.delete_session(tx, session_id))


async def revoke_sessions(svc: Services, user_id: str | None, keep: str | None = None) -> int:
    return await svc.writer.run(lambda tx: sessions.delete_sessions_of(tx, user_id, keep))


def describe(principal: Principal, user: dict[str, Any] | None) -> dict[str, Any]:
    """``GET /api/auth/me``: who the caller is and what it may do."""
    return {
        "kind": principal.kind,
        "name": principal.name,
        "role": principal.role,
        "scopes": sorted(principal.scopes),
        "user": users.public(user) if user else None,
        "session_id": principal.session_id,
        "token_id": principal.token_id,
    }


async def user_of(svc: Services, principal: Principal) -> dict[str, Any] | None:
    if principal.user_id is None:
        return None
    return await _user_or_401(svc, principal.user_id)
