"""Who is calling: the result of authentication, read by every scope check."""

from __future__ import annotations

from dataclasses import dataclass

from codeyard.auth.scopes import ALL


@dataclass(frozen=True, slots=True)
class Principal:
    """``kind``: ``admin_token``, ``token`` (personal access token) or ``session``.

    ``user_id`` is None for the admin token and for sessions it opened (token-login).
    ``scopes`` are expanded (see :mod:`codeyard.auth.scopes`). ``session_id`` is the session
    row's public id when the caller came with the session cookie. ``token_id`` is the personal
    access token presented, or the one a token-login session was opened with.
    """

    kind: str
    name: str
    scopes: frozenset[str]
    user_id: str | None = None
    role: str = "admin"
    session_id: str | None = None
    token_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes

    @property
    def via_cookie(self) -> bool:
        return self.session_id is not None

    @property
    def password_session(self) -> bool:
        """A browser session signed in with a password (not opened with a token)."""
        return self.session_id is not None and self.token_id is None

    def owns(self, created_by: str | None) -> bool:
        """Whether a run created by ``created_by`` is this caller's (None: the admin token's)."""
        return created_by == self.user_id


ADMIN = Principal("admin_token", "admin", ALL)
