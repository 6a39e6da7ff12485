"""A project's repositories pulled from their remotes, and its runs' checkpoints in one list
(the Laravel seed's ``POST /projects/{p}/pull`` and ``GET /projects/{p}/snapshots``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from codeyard.api.auth import Caller, require_scope
from codeyard.api.deps import Limit, Svc
from codeyard.services import ownership, project_sync
from codeyard.services import projects as project_service

router = APIRouter(tags=["projects"])


class RepoPull(BaseModel):
    repo_id: str
    name: str
    branch: str
    status: str = Field(description="updated, up_to_date or skipped")
    reason: str | None = None
    remote: str | None = None
    before: str | None = None
    after: str | None = None


class PullResult(BaseModel):
    project_id: str
    repos: list[RepoPull]


class RepoClone(BaseModel):
    repo_id: str
    name: str
    path: str
    status: str = Field(description="cloned, present or skipped")
    reason: str | None


class CloneResult(BaseModel):
    project_id: str
    repos: list[RepoClone]


class ProjectCheckpoint(BaseModel):
    id: str
    run_id: str
    run_number: int
    run_title: str
    number: int
    turn: int
    kind: str
    description: str | None
    commits: dict[str, Any]
    diff_stats: dict[str, Any]
    created_at: str


class ProjectCheckpoints(BaseModel):
    project_id: str
    data: list[ProjectCheckpoint]


@router.post(
    "/projects/{project_ref}/pull",
    dependencies=[require_scope("settings:write")],
    response_model=PullResult,
)
async def pull_project(project_ref: str, svc: Svc, principal: Caller) -> PullResult:
    """Fetch each repository's remote and fast-forward its default branch (never rewrites).
    The project's owner, members or an admin only: it moves the shared checkouts."""
    project = await project_service.get_project(svc, project_ref)
    ownership.require_project_manager(principal, project, "pull its repositories")
    return PullResult(**await project_sync.pull(svc, project_ref))


@router.get(
    "/projects/{project_ref}/checkpoints",
    dependencies=[require_scope("runs:read")],
    response_model=ProjectCheckpoints,
)
async def project_checkpoints(project_ref: str, svc: Svc, limit: Limit = 100) -> ProjectCheckpoints:
    """Checkpoints of all the project's runs, newest first."""
    return ProjectCheckpoints(**await project_sync.checkpoints(svc, project_ref, limit))


@router.post(
    "/projects/{project_ref}/clone",
    dependencies=[require_scope("settings:write")],
    response_model=CloneResult,
)
async def reclone_project(project_ref: str, svc: Svc) -> CloneResult:
    """Clone again each repository that came from a URL and whose clone is gone or broken."""
    return CloneResult(**await project_sync.reclone(svc, project_ref))
