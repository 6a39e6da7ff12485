"""Who may open a preview origin: one-time tokens traded for a preview-scoped cookie.

Host-mode previews live on their own origin (``<run>-<n>.preview.localhost``), which never sees
Codeyard's session cookie. The UI asks the API for a link carrying a one-time token (short
lived, single use); the preview origin trades it for a cookie valid on that host only. Grants
are kept in memory: after a restart the UI simply asks for a new link.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

TOKEN_SECONDS = 60.0
COOKIE_SECONDS = 12 * 3600.0
COOKIE = "codeyard_preview"


@dataclass(frozen=True, slots=True)
class Grant:
    run_id: str
    index: int
    user_id: str | None
    expires: float


class PreviewGrants:
    def __init__(self) -> None:
        self._tokens: dict[str, Grant] = {}
        self._cookies: dict[str, Grant] = {}

    def _sweep(self, now: float) -> None:
        for table in (self._tokens, self._cookies):
            for key in [k for k, g in table.items() if g.expires <= now]:
                del table[key]

    def issue(self, run_id: str, index: int, user_id: str | None) -> tuple[str, float]:
        now = time.monotonic()
        self._sweep(now)
        token = secrets.token_urlsafe(24)
        grant = Grant(run_id, index, user_id, now + TOKEN_SECONDS)
        self._tokens[token] = grant
        return token, TOKEN_SECONDS

    def redeem(self, token: str, run_id: str, index: int) -> str | None:
        """The cookie value for a valid, unused token of this preview; None otherwise."""
        grant = self._tokens.pop(token, None)
        now = time.monotonic()
        if grant is None or grant.expires <= now or (grant.run_id, grant.index) != (run_id, index):
            return None
        cookie = secrets.token_urlsafe(32)
        self._cookies[cookie] = Grant(run_id, index, grant.user_id, now + COOKIE_SECONDS)
        return cookie

    def check(self, cookie: str | None, run_id: str, index: int) -> Grant | None:
        grant = self._cookies.get(cookie or "")
        if grant is None or grant.expires <= time.monotonic():
            return None
        return grant if (grant.run_id, grant.index) == (run_id, index) else None

    def revoke_run(self, run_id: str) -> None:
        for table in (self._tokens, self._cookies):
            for key in [k for k, g in table.items() if g.run_id == run_id]:
                del table[key]


class Recent:
    """Positive answers remembered for ``seconds`` (who may reach which port, which run a
    preview host names): a page load is dozens of requests, each otherwise two queries.
    A revoked lease or ownership takes effect within ``seconds``."""

    def __init__(self, seconds: float = 2.0, size: int = 4096) -> None:
        self.seconds = seconds
        self.size = size
        self._until: dict[object, tuple[float, object]] = {}

    def get(self, key: object) -> object | None:
        hit = self._until.get(key)
        if hit is None or hit[0] <= time.monotonic():
            return None
        return hit[1]

    def put(self, key: object, value: object) -> None:
        if len(self._until) >= self.size:
            self._until.clear()
        self._until[key] = (time.monotonic() + self.seconds, value)
