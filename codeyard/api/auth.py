"""Who is calling, and whether they may: the one place routes declare and enforce scopes.

Every route under ``/api`` declares its scope with ``dependencies=[require_scope("runs:read")]``
(or ``require_scope(SIGNED_IN)`` for self-service routes any caller may use). The dependency
authenticates (bearer token or session cookie, CSRF for cookie writes), checks the scope, and for
scopes that act on one run (``scopes.RUN_ACTING``) checks that a non-admin caller created it.
Handlers that need the caller take ``Caller``. ``tests/integration/test_auth_routes.py`` walks
the app and fails for a route without exactly one scope.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.params import Depends as DependsParam
from starlette.requests import HTTPConnection

from codeyard.auth.principal import ADMIN, Principal
from codeyard.auth.scopes import ALL, RUN_ACTING
from codeyard.domain.errors import Forbidden, Unauthorized
from codeyard.services import auth as auth_service
from codeyard.services.auth import SESSION_COOKIE

__all__ = [
    "ACCOUNT",
    "ADMIN",
    "PSEUDO_SCOPES",
    "SIGNED_IN",
    "Caller",
    "Principal",
    "authenticate",
    "current_principal",
    "require_action_scope",
    "require_principal",
    "require_scope",
    "scope_check",
]

#: Pseudo-scope for self-service routes (own profile, tokens, logout).
SIGNED_IN = "signed_in"
#: Pseudo-scope for account routes (password, MFA, sessions): a session opened with the
#: password, or an ``admin``-scoped caller. A narrow token (or a session it opened with
#: token-login) must not be able to take the account over.
ACCOUNT = "account"
PSEUDO_SCOPES = frozenset({SIGNED_IN, ACCOUNT})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "x-csrf-token"


def _presented_token(conn: HTTPConnection) -> str | None:
    """The bearer token; ``?access_token=`` only on WebSockets (browsers cannot set headers
    there), never on HTTP, where URLs end up in logs, history and Referer headers."""
    header = conn.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if conn.scope.get("type") != "websocket":
        return None
    return conn.query_params.get("access_token") or None


async def authenticate(conn: HTTPConnection) -> Principal:
    """Resolve the caller (cached per request) or raise 401; 403 for a cookie write without CSRF.

    Used by HTTP routes and the WebSocket alike. A bearer token wins over the session cookie.
    """
    cached = getattr(conn.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    svc = conn.app.state.services
    state = conn.app.state.auth
    token = _presented_token(conn)
    if token is not None:
        principal = await auth_service.principal_for_token(svc, state, token)
    elif cookie := conn.cookies.get(SESSION_COOKIE):
        principal, csrf_digest = await auth_service.principal_for_session(svc, state, cookie)
        method = conn.scope.get("method")
        if method is not None and method not in SAFE_METHODS:
            sent = conn.headers.get(CSRF_HEADER)
            if not sent or not auth_service.csrf_matches(sent, csrf_digest):
                raise Forbidden(
                    "Cookie-authenticated writes need the X-CSRF-Token header set to the value "
                    "of the codeyard_csrf cookie.",
                )
    else:
        raise Unauthorized(
            "Authentication required: send 'Authorization: Bearer <token>' (the admin token is "
            "in <data-dir>/admin.token, or create a personal access token), or sign in."
        )
    conn.state.principal = principal
    return principal


async def require_principal(request: Request) -> Principal:
    """Any authenticated caller (the routers' baseline; routes add their scope on top)."""
    return await authenticate(request)


current_principal = require_principal
Caller = Annotated[Principal, Depends(current_principal)]


async def _check_run_ownership(request: Request, principal: Principal) -> None:
    """A non-admin acting on one run (by path parameter) must have created it."""
    owner = await auth_service.run_owner(request.app.state.services, request.path_params)
    if owner is auth_service.NO_RUN:
        return  # no run in the path, or an unknown one: the handler answers (404)
    if not principal.owns(owner):
        raise Forbidden(
            "This run belongs to another user; only its creator or an admin may change it.",
        )


def scope_check(scope: str) -> Callable[[Request], Awaitable[Principal]]:
    """The dependency function behind :func:`require_scope` (carries ``required_scope``)."""
    if scope not in PSEUDO_SCOPES and scope not in ALL:
        raise ValueError(f"unknown scope {scope!r}")

    async def check(request: Request) -> Principal:
        principal = await authenticate(request)
        if scope == ACCOUNT:
            if not (principal.is_admin or principal.password_session):
                raise Forbidden(
                    "Account settings (password, two-factor, sessions) need a session signed "
                    "in with the password, or an admin-scoped token: sign in with "
                    "POST /api/auth/login.",
                    required_scope=ACCOUNT,
                )
            return principal
        if scope not in PSEUDO_SCOPES and scope not in principal.scopes:
            raise Forbidden(
                f"This needs the '{scope}' scope; the caller has: "
                f"{', '.join(sorted(principal.scopes)) or 'none'}. Use a token or a user role "
                "that grants it.",
                required_scope=scope,
            )
        if scope in RUN_ACTING and not principal.is_admin:
            await _check_run_ownership(request, principal)
        return principal

    check.required_scope = scope  # type: ignore[attr-defined]
    return check


def require_scope(scope: str) -> Any:
    """``dependencies=[require_scope("runs:control")]``: authenticate, then check ``scope``."""
    dep: DependsParam = Depends(scope_check(scope))
    return dep


def require_action_scope(scopes_by_action: dict[str, str], field: str = "action") -> Any:
    """An extra scope for some values of a body field: ``{"create_pr": "git:push"}`` on resolve.

    Declared next to the route's own ``require_scope``; a malformed body is left to validation.
    """
    for scope in scopes_by_action.values():
        scope_check(scope)  # unknown scope names fail at import

    async def check(request: Request) -> None:
        try:
            body = await request.json()
        except ValueError:
            return
        action = body.get(field) if isinstance(body, dict) else None
        scope = scopes_by_action.get(action) if isinstance(action, str) else None
        if scope is not None:
            await scope_check(scope)(request)

    dep: DependsParam = Depends(check)
    return dep
