"""The socket's routes: CodePiper's ``POST /auth/cli/reset-password`` and
``POST /auth/cli/reset-mfa``, and ``GET /health``. No token is asked for: a caller who can
open the socket (mode 0600 in a 0700 directory) is the server's own OS user or root, who can
read the data directory anyway. Errors are the same RFC 7807 problems as the HTTP API's."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from codeyard.api.problems import install as install_problems
from codeyard.auth.passwords import MAX_LENGTH, MIN_LENGTH
from codeyard.services import users as user_service
from codeyard.services.context import Services

__all__ = ["build"]

Password = Annotated[
    str, Field(min_length=MIN_LENGTH, max_length=MAX_LENGTH, description="The new password.")
]
UserRef = Annotated[str, Field(min_length=1, max_length=100, description="Username or id.")]


class ResetPassword(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: UserRef
    password: Password


class ResetMfa(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: UserRef


class ResetDone(BaseModel):
    id: str
    username: str
    role: str
    mfa_enabled: bool
    #: The user's sessions ended with the reset: they sign in again.
    sessions_ended: bool = True


def _done(user: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": user["id"],
        "username": user["username"],
        "role": user["role"],
        "mfa_enabled": bool(user.get("mfa_enabled")),
    }


def build(services: Services) -> FastAPI:
    app = FastAPI(title="Codeyard CLI socket", openapi_url=None, docs_url=None, redoc_url=None)
    install_problems(app)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/auth/cli/reset-password", response_model=ResetDone)
    async def reset_password(body: ResetPassword) -> dict[str, Any]:
        """A new password for a user; their sessions end (audited as ``cli-socket``)."""
        user = await user_service.update_user(
            services, body.username, {"password": body.password}, actor="cli-socket"
        )
        return _done(user)

    @app.post("/auth/cli/reset-mfa", response_model=ResetDone)
    async def reset_mfa(body: ResetMfa) -> dict[str, Any]:
        """Two-factor authentication off for a user; their sessions end."""
        return _done(await user_service.reset_mfa(services, body.username))

    return app
