"""Env sets: ``/api/env-sets`` — variables for agent processes, values write-only."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from codeyard.api.auth import Caller, require_scope
from codeyard.api.deps import Cursor, Limit, Svc
from codeyard.services import env_sets as service

router = APIRouter(tags=["env-sets"])
READ = [require_scope("settings:read")]
WRITE = [require_scope("settings:write")]

Value = Annotated[str, Field(max_length=65536)]


class EnvSetBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    variables: dict[str, Value] = Field(
        default_factory=dict,
        max_length=500,
        description=f"Name → value. Values are never shown again; in a PUT, '{service.MASK}' "
        "keeps the stored value.",
    )


class EnvSetView(BaseModel):
    id: str
    name: str
    variables: dict[str, str] = Field(description=f"Every value shows as '{service.MASK}'.")
    keys: list[str]
    owner_id: str | None = Field(description="The user who created it (None: the admin token).")
    created_at: str
    updated_at: str


class EnvSetPage(BaseModel):
    data: list[EnvSetView]
    next_cursor: str | None


@router.get("/env-sets", response_model=EnvSetPage, dependencies=READ)
async def list_env_sets(
    svc: Svc, principal: Caller, limit: Limit = 50, cursor: Cursor = None
) -> dict[str, Any]:
    """The caller's env sets (an admin: all), newest first; values masked."""
    return await service.list_page(svc, principal, limit, cursor)


@router.post("/env-sets", status_code=201, response_model=EnvSetView, dependencies=WRITE)
async def create_env_set(body: EnvSetBody, svc: Svc, principal: Caller) -> dict[str, Any]:
    """Store variables encrypted, owned by the caller (422 naming a bad variable name, 409 for
    a taken name)."""
    return await service.create(svc, principal, body.name, body.variables)


@router.get("/env-sets/{env_set_id}", response_model=EnvSetView, dependencies=READ)
async def get_env_set(env_set_id: str, svc: Svc, principal: Caller) -> dict[str, Any]:
    """One of the caller's env sets (403 for another user's), values masked."""
    return await service.get(svc, principal, env_set_id)


@router.put("/env-sets/{env_set_id}", response_model=EnvSetView, dependencies=WRITE)
async def put_env_set(
    env_set_id: str, body: EnvSetBody, svc: Svc, principal: Caller
) -> dict[str, Any]:
    """Replace the name and the variables (names left out are removed); owner or admin only."""
    return await service.replace(svc, principal, env_set_id, body.name, body.variables)


@router.delete("/env-sets/{env_set_id}", status_code=204, dependencies=WRITE)
async def delete_env_set(env_set_id: str, svc: Svc, principal: Caller) -> Response:
    """Delete an env set (409 while an agent profile uses it); owner or admin only."""
    await service.delete(svc, principal, env_set_id)
    return Response(status_code=204)
