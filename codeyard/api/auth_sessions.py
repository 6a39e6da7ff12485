"""``GET /api/auth/sessions``: the caller's signed-in sessions (CodePiper's "list auth
sessions"), so a person can see where they are signed in before revoking the others with
``DELETE /api/auth/sessions``. Secrets are never shown: only ids, browsers and times."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from codeyard.api.auth import SIGNED_IN, Caller, require_scope
from codeyard.api.deps import Svc
from codeyard.store import sessions

router = APIRouter(tags=["auth"])


class AuthSession(BaseModel):
    id: str
    user_agent: str | None
    created_at: str
    last_seen_at: str
    expires_at: str
    current: bool = Field(description="The session this request came with.")


class AuthSessions(BaseModel):
    data: list[AuthSession]
    next_cursor: str | None = None


@router.get("/auth/sessions", dependencies=[require_scope(SIGNED_IN)], response_model=AuthSessions)
async def list_sessions(svc: Svc, principal: Caller) -> AuthSessions:
    """The caller's sessions, newest first (the admin token's sessions for the admin token)."""
    async with svc.engine.connect() as conn:
        rows = await sessions.sessions_of(conn, principal.user_id)
    return AuthSessions(
        data=[AuthSession(**r, current=r["id"] == principal.session_id) for r in rows]
    )
