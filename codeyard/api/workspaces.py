"""Workspaces: ``/api/workspaces`` — a scope grouping projects, with defaults for the runs
started in it (``POST /api/runs`` with ``workspace_id``; CodePiper's ``/workspaces``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from codeyard.api.auth import Caller, require_scope
from codeyard.api.deps import Cursor, Limit, Svc
from codeyard.services import workspaces as service

router = APIRouter(tags=["workspaces"])
READ = [require_scope("settings:read")]
WRITE = [require_scope("settings:write")]

Ref = Annotated[str, Field(min_length=1, max_length=200)]


class WorkspaceDefaults(BaseModel):
    """What a run started in the workspace takes when it leaves it out."""

    model_config = ConfigDict(extra="forbid")

    agent_id: Ref | None = Field(default=None, description="An agent profile (or a provider).")
    provider: Ref | None = None
    model: Annotated[str, Field(max_length=200)] | None = None
    env_set_ids: list[Ref] = Field(
        default_factory=list, max_length=50, description="Added before the run's own."
    )
    policy_set_ids: list[Ref] = Field(
        default_factory=list, max_length=50, description="Added to the run's own."
    )
    budget_usd: float | None = Field(default=None, ge=0, le=1_000_000)


class WorkspaceBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    project_ids: list[Ref] = Field(
        default_factory=list,
        max_length=200,
        description="Projects (ids or slugs) runs in the workspace may use; none: any.",
    )
    defaults: WorkspaceDefaults = Field(default_factory=WorkspaceDefaults)


class WorkspaceView(BaseModel):
    id: str
    name: str
    description: str | None
    project_ids: list[str]
    defaults: WorkspaceDefaults
    owner_id: str | None = Field(description="The user who created it (None: the admin token).")
    created_at: str
    updated_at: str


class WorkspacePage(BaseModel):
    data: list[WorkspaceView]
    next_cursor: str | None


def _data(body: WorkspaceBody) -> dict[str, Any]:
    return body.model_dump()


@router.get("/workspaces", response_model=WorkspacePage, dependencies=READ)
async def list_workspaces(
    svc: Svc, principal: Caller, limit: Limit = 50, cursor: Cursor = None
) -> dict[str, Any]:
    """The caller's workspaces (an admin: all), newest first."""
    return await service.list_page(svc, principal, limit, cursor)


@router.post("/workspaces", status_code=201, response_model=WorkspaceView, dependencies=WRITE)
async def create_workspace(body: WorkspaceBody, svc: Svc, principal: Caller) -> dict[str, Any]:
    """Create a workspace owned by the caller (422 naming an unknown project, profile, env set
    or policy set; 403 for another user's project or env set; 409 for a taken name)."""
    return await service.create(svc, principal, _data(body))


@router.get("/workspaces/{workspace_id}", response_model=WorkspaceView, dependencies=READ)
async def get_workspace(workspace_id: str, svc: Svc, principal: Caller) -> dict[str, Any]:
    """One of the caller's workspaces (403 for another user's)."""
    return await service.get(svc, principal, workspace_id)


@router.put("/workspaces/{workspace_id}", response_model=WorkspaceView, dependencies=WRITE)
async def put_workspace(
    workspace_id: str, body: WorkspaceBody, svc: Svc, principal: Caller
) -> dict[str, Any]:
    """Replace name, description, projects and defaults; owner or admin only."""
    return await service.replace(svc, principal, workspace_id, _data(body))


@router.delete("/workspaces/{workspace_id}", status_code=204, dependencies=WRITE)
async def delete_workspace(workspace_id: str, svc: Svc, principal: Caller) -> Response:
    """Delete a workspace; runs started in it keep its id. Owner or admin only."""
    await service.delete(svc, principal, workspace_id)
    return Response(status_code=204)
