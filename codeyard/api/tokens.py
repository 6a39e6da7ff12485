"""``/api/tokens``: the caller's personal access tokens (``cy_pat_…``), secret shown once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from codeyard.api.account_views import NewTokenView, TokenView
from codeyard.api.auth import SIGNED_IN, Caller, require_scope
from codeyard.api.deps import Svc, listing
from codeyard.api.views import Page
from codeyard.services import users as service

router = APIRouter(prefix="/tokens", tags=["users"], dependencies=[require_scope(SIGNED_IN)])


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    scopes: list[str] = Field(
        min_length=1,
        max_length=20,
        description="runs:read, runs:write, runs:control, approvals:resolve, git:merge, "
        "git:push, settings:read, settings:write, admin. Never more than the caller holds.",
    )
    expires_at: datetime | None = Field(default=None, description="ISO-8601; UTC if no zone.")


@router.get("", response_model=Page[TokenView])
async def list_tokens(principal: Caller, svc: Svc) -> dict[str, Any]:
    """The caller's tokens (prefix only; the secret is never shown again)."""
    return listing(list(await service.list_tokens(svc, principal)), None)


@router.post("", status_code=201, response_model=NewTokenView)
async def create_token(principal: Caller, body: TokenCreate, svc: Svc) -> dict[str, Any]:
    """A token for scripts and the CLI; ``token`` in the answer is the only copy."""
    return await service.create_token(svc, principal, body.name, body.scopes, body.expires_at)


@router.delete("/{token_id}", status_code=204)
async def delete_token(token_id: str, principal: Caller, svc: Svc) -> Response:
    await service.delete_token(svc, principal, token_id)
    return Response(status_code=204)
