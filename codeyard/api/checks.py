"""Local checks (issue 21): a repository's check commands, and running them on a run.

``PUT /api/repos/{id}/checks`` names the commands and what they gate; ``POST
/api/runs/{id}/checks`` runs them now in the run's worktrees (sandboxed) and answers the suite;
``GET /api/runs/{id}/checks`` is the last suite and whether it still matches the worktrees.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field, field_validator

from codeyard.api.auth import Caller, require_scope
from codeyard.api.deps import Svc
from codeyard.api.schemas import Body
from codeyard.checks import CheckSpec
from codeyard.services import checks as check_service

router = APIRouter(tags=["checks"])


class RepoChecksUpdate(Body):
    checks: list[CheckSpec] = Field(default_factory=list, max_length=20)
    required: bool = Field(
        default=False, description="Landing needs passing checks on the worktree's state."
    )
    after_turn: bool = Field(default=False, description="Run them whenever a turn ends.")
    fix_loop: bool = Field(
        default=False,
        description="After-turn failures go back to the agent as its next turn (3 per run).",
    )

    @field_validator("checks")
    @classmethod
    def _unique_names(cls, checks: list[CheckSpec]) -> list[CheckSpec]:
        names = [c.name for c in checks]
        if len(set(names)) != len(names):
            raise ValueError("check names must be unique within a repository")
        return checks


class RepoChecks(BaseModel):
    repo_id: str
    checks: list[CheckSpec]
    required: bool
    after_turn: bool
    fix_loop: bool
    updated_at: str | None


class CheckResultView(BaseModel):
    repo_id: str
    name: str
    command: str
    ok: bool
    exit_code: int | None
    timed_out: bool
    duration_ms: int
    log_tail: str


class CheckSuite(BaseModel):
    passed: bool
    trees: dict[str, str] = Field(description="Worktree state (tree id) checked, by repo id.")
    results: list[CheckResultView]


class LastSuite(BaseModel):
    trigger: str
    passed: bool
    failed: list[str]
    trees: dict[str, str]
    current: bool = Field(description="The worktrees are still in the state that was checked.")


class RunChecks(BaseModel):
    last: LastSuite | None


@router.get(
    "/repos/{repo_id}/checks",
    dependencies=[require_scope("settings:read")],
    response_model=RepoChecks,
)
async def get_repo_checks(repo_id: str, svc: Svc) -> dict[str, Any]:
    return await check_service.get_config(svc, repo_id)


@router.put(
    "/repos/{repo_id}/checks",
    dependencies=[require_scope("settings:write")],
    response_model=RepoChecks,
)
async def put_repo_checks(
    repo_id: str, body: RepoChecksUpdate, svc: Svc, principal: Caller
) -> dict[str, Any]:
    """Replace the repository's checks. Commands run in every user's runs (sandboxed), so
    changing them needs ``admin`` and is audited; names must be unique."""
    config = body.model_dump()
    return await check_service.put_config(svc, principal, repo_id, config)


@router.post(
    "/runs/{run_ref}/checks",
    dependencies=[require_scope("runs:control")],
    response_model=CheckSuite,
)
async def run_checks(run_ref: str, svc: Svc) -> dict[str, Any]:
    """Run the checks of the run's repositories now (the run must be idle); results are also
    ``check.*`` events. 409 when no repository has checks."""
    return await check_service.run_checks(svc, run_ref)


@router.get(
    "/runs/{run_ref}/checks",
    dependencies=[require_scope("runs:read")],
    response_model=RunChecks,
)
async def last_checks(run_ref: str, svc: Svc) -> dict[str, Any]:
    return {"last": await check_service.latest(svc, run_ref)}
