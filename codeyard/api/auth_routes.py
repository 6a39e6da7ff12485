"""``/api/auth``: first-run setup, sign-in (password or token), sessions, password and TOTP.

A sign-in answers with two cookies: ``codeyard_session`` (HttpOnly, SameSite=Strict, Secure over
HTTPS or with ``CODEYARD_BEHIND_TLS_PROXY``) and ``codeyard_csrf`` (readable by the page, which
echoes it in ``X-CSRF-Token`` on writes). The CSRF value is also in the JSON answer.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from codeyard.api.account_views import (
    AuthStatusView,
    MeView,
    MfaOffView,
    MfaOnView,
    MfaSetupView,
    SignedInView,
    UserView,
)
from codeyard.api.auth import ACCOUNT, SIGNED_IN, Caller, authenticate, require_scope
from codeyard.api.deps import Svc
from codeyard.auth.passwords import MAX_LENGTH, MIN_LENGTH
from codeyard.domain.errors import CodeyardError
from codeyard.services import account
from codeyard.services import auth as service
from codeyard.services.auth import CSRF_COOKIE, SESSION_COOKIE, AuthState, NewSession

public = APIRouter(prefix="/auth", tags=["auth"])
router = APIRouter(prefix="/auth", tags=["auth"])

Username = Annotated[
    str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]*$")
]
Password = Annotated[
    str,
    Field(
        min_length=MIN_LENGTH,
        max_length=MAX_LENGTH,
        description=f"At least {MIN_LENGTH} characters.",
    ),
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SetupBody(_Body):
    setup_code: str = Field(max_length=100, description="Printed by `codeyard serve` at start.")
    username: Username
    password: Password


class LoginBody(_Body):
    username: str = Field(max_length=100)
    password: str = Field(max_length=MAX_LENGTH)
    totp_code: str | None = Field(
        default=None, max_length=40, description="A TOTP code or a recovery code."
    )


class TokenLoginBody(_Body):
    token: str = Field(max_length=400, description="The admin token or a personal access token.")


class PasswordBody(_Body):
    current_password: str = Field(max_length=MAX_LENGTH)
    new_password: Password


class CodeBody(_Body):
    code: str = Field(max_length=40, description="The code the authenticator app shows now.")


class DisableBody(_Body):
    password: str = Field(max_length=MAX_LENGTH)


def _state(request: Request) -> AuthState:
    state: AuthState = request.app.state.auth
    return state


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _signed_in(request: Request, response: Response, session: NewSession) -> dict[str, Any]:
    # Behind a TLS-terminating proxy the request reaches us as http, but the browser used https.
    secure = request.url.scheme == "https" or request.app.state.services.settings.behind_tls_proxy
    common: dict[str, Any] = {
        "max_age": session.max_age,
        "path": "/",
        "samesite": "strict",
        "secure": secure,
    }
    response.set_cookie(SESSION_COOKIE, session.secret, httponly=True, **common)
    response.set_cookie(CSRF_COOKIE, session.csrf, httponly=False, **common)
    response.headers["Cache-Control"] = "no-store"
    return {"user": session.user, "csrf_token": session.csrf, "expires_in": session.max_age}


@public.get("/status", response_model=AuthStatusView)
async def auth_status(request: Request, svc: Svc) -> dict[str, Any]:
    """Public: whether first-run setup is pending, and who the caller is (if anyone)."""
    try:
        principal = await authenticate(request)
    except CodeyardError:
        principal = None
    user = await service.user_of(svc, principal) if principal else None
    return {
        "setup_required": await service.setup_required(svc),
        "authenticated": principal is not None,
        "user": service.describe(principal, user) if principal else None,
    }


@public.post("/setup", status_code=201, response_model=SignedInView)
async def setup(request: Request, response: Response, body: SetupBody, svc: Svc) -> dict[str, Any]:
    """Public, first run only: the first admin chooses a username and password (409 after)."""
    session = await service.setup(
        svc,
        _state(request),
        _client(request),
        body.setup_code,
        body.username,
        body.password,
        request.headers.get("user-agent"),
    )
    return _signed_in(request, response, session)


@public.post("/login", response_model=SignedInView)
async def login(request: Request, response: Response, body: LoginBody, svc: Svc) -> dict[str, Any]:
    """Public: password sign-in (plus ``totp_code`` when two-factor is on) → session cookie.

    Without a needed ``totp_code`` the 401 problem carries ``mfa_required: true``. Five
    failures a minute from one address → 429 with ``Retry-After``.
    """
    session = await service.login(
        svc,
        _state(request),
        _client(request),
        body.username,
        body.password,
        body.totp_code,
        request.headers.get("user-agent"),
    )
    return _signed_in(request, response, session)


@public.post("/token-login", response_model=SignedInView)
async def token_login(
    request: Request, response: Response, body: TokenLoginBody, svc: Svc
) -> dict[str, Any]:
    """Public: trade the admin token (the login URL printed at start) or a token for a session."""
    session = await service.token_login(
        svc, _state(request), _client(request), body.token, request.headers.get("user-agent")
    )
    return _signed_in(request, response, session)


@router.post("/logout", status_code=204, dependencies=[require_scope(SIGNED_IN)])
async def logout(principal: Caller, svc: Svc) -> Response:
    """End this session and clear its cookies (a bearer token stays valid: revoke it instead)."""
    await service.logout(svc, principal)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/")
    response.delete_cookie(CSRF_COOKIE, path="/")
    return response


@router.delete("/sessions", status_code=204, dependencies=[require_scope(ACCOUNT)])
async def revoke_my_sessions(principal: Caller, svc: Svc) -> Response:
    """Sign out everywhere: end every session of the caller (this one included)."""
    await service.revoke_sessions(svc, principal.user_id)
    return Response(status_code=204)


@router.get("/me", dependencies=[require_scope(SIGNED_IN)], response_model=MeView)
async def me(principal: Caller, svc: Svc) -> dict[str, Any]:
    """The caller: kind of credential, user, role and effective scopes."""
    return service.describe(principal, await service.user_of(svc, principal))


@router.post("/password", dependencies=[require_scope(ACCOUNT)], response_model=UserView)
async def change_password(
    request: Request, principal: Caller, body: PasswordBody, svc: Svc
) -> dict[str, Any]:
    """Change your password; your other sessions end. Needs a password session or an admin
    token; wrong current passwords are limited per account (429)."""
    return await account.change_password(
        svc, _state(request), principal, body.current_password, body.new_password
    )


@router.post("/mfa/setup", dependencies=[require_scope(ACCOUNT)], response_model=MfaSetupView)
async def mfa_setup(principal: Caller, svc: Svc) -> dict[str, Any]:
    """Start TOTP: a secret and its ``otpauth://`` URI; confirm with ``/mfa/verify``."""
    return await account.mfa_setup(svc, principal)


@router.post("/mfa/verify", dependencies=[require_scope(ACCOUNT)], response_model=MfaOnView)
async def mfa_verify(
    request: Request, principal: Caller, body: CodeBody, svc: Svc
) -> dict[str, Any]:
    """Confirm a code from the new secret: TOTP is on; answers single-use recovery codes."""
    return await account.mfa_verify(svc, principal, body.code, _state(request).now())


@router.post("/mfa/disable", dependencies=[require_scope(ACCOUNT)], response_model=MfaOffView)
async def mfa_disable(
    request: Request, principal: Caller, body: DisableBody, svc: Svc
) -> dict[str, Any]:
    """Turn TOTP off (needs the password). Lost device: `codeyard users reset-mfa NAME`."""
    return await account.mfa_disable(svc, _state(request), principal, body.password)
