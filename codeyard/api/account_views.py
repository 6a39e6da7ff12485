"""Response models of sign-in, the caller, users, personal access tokens and share links.

Declared as ``response_model`` so the OpenAPI schema (and the UI's generated types) describe
these answers; none of them carries a secret except the once-shown ``token`` of a creation.
"""

from __future__ import annotations

from codeyard.api.views import View


class UserView(View):
    id: str
    username: str
    #: ``admin``, ``member`` or ``viewer``.
    role: str
    mfa_enabled: bool
    #: Where sign-in codes go (``null``: this user signs in with a password only).
    email: str | None = None
    #: The name people see (``null``: the username).
    display_name: str | None = None
    #: The user's picture (``GET``, any signed-in caller); ``null``: none.
    avatar_url: str | None = None
    created_at: str
    updated_at: str


class MeView(View):
    """Who the caller is: the kind of credential, its user, role and effective scopes."""

    #: ``admin_token``, ``token`` (personal access token) or ``session``.
    kind: str
    name: str
    role: str
    scopes: list[str]
    #: ``null`` for the admin token and the sessions it opened.
    user: UserView | None
    session_id: str | None
    token_id: str | None


class AuthStatusView(View):
    setup_required: bool
    authenticated: bool
    user: MeView | None


class SignedInView(View):
    """The answer of a sign-in; the session itself is in the ``codeyard_session`` cookie."""

    user: UserView | None
    #: Echo in ``X-CSRF-Token`` on writes (also in the ``codeyard_csrf`` cookie).
    csrf_token: str
    #: Seconds until the session ends.
    expires_in: int


class MfaSetupView(View):
    secret: str
    otpauth_uri: str


class MfaOffView(View):
    mfa_enabled: bool


class MfaOnView(MfaOffView):
    #: Single-use codes, answered once when TOTP is turned on.
    recovery_codes: list[str]


class TokenView(View):
    id: str
    name: str
    #: The start of the secret, to recognise it.
    prefix: str
    scopes: list[str]
    expires_at: str | None
    last_used_at: str | None
    created_at: str


class NewTokenView(TokenView):
    #: The secret; this answer holds its only copy.
    token: str


class ShareView(View):
    id: str
    run_id: str
    created_by: str | None
    expires_at: str
    created_at: str


class NewShareView(ShareView):
    #: The secret part of the link; this answer holds its only copy.
    token: str
    url: str
