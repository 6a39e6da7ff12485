"""``POST /api/runs/validate``: everything run creation checks, nothing written (CodePiper's
``sessions/validate`` and ``validate-git``), and ``GET /api/version``."""

from __future__ import annotations

import platform
import sys

from fastapi import APIRouter
from pydantic import BaseModel, Field

from codeyard import __version__
from codeyard.api.auth import Caller, require_scope
from codeyard.api.deps import Svc
from codeyard.api.schemas import RunCreate
from codeyard.services import runs as run_service

router = APIRouter()


class RepoRef(BaseModel):
    id: str
    name: str
    path: str


class RunValidation(BaseModel):
    valid: bool
    provider: str
    model: str | None
    agent_id: str | None
    project_id: str | None
    registers_project: bool = Field(description="repo_path is new: creating would register it.")
    repos: list[RepoRef]
    base_commits: dict[str, str] = Field(description="The commit each worktree would start at.")
    policy_set_ids: list[str]
    permission_mode: str | None


class Version(BaseModel):
    version: str
    python: str
    platform: str
    database: str


@router.post(
    "/runs/validate",
    tags=["runs"],
    dependencies=[require_scope("runs:write")],
    response_model=RunValidation,
)
async def validate_run(body: RunCreate, svc: Svc, principal: Caller) -> RunValidation:
    """Dry-run creation: the same checks as ``POST /api/runs`` (agent, options, env sets,
    repository and ``source_ref``, policy sets, scopes), a problem for the first that fails,
    and no run, project or event written."""
    return RunValidation(**await run_service.create(svc, body.data(), principal, dry_run=True))


@router.get(
    "/version", tags=["meta"], dependencies=[require_scope("runs:read")], response_model=Version
)
async def version(svc: Svc) -> Version:
    return Version(
        version=__version__,
        python=sys.version.split()[0],
        platform=platform.platform(terse=True),
        database=svc.database,
    )
