"""``GET /api/runs/{run}/land-check``: what landing would do, before landing (issue 14)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from codeyard.api.auth import require_scope
from codeyard.api.deps import Svc
from codeyard.services import land_check

router = APIRouter(tags=["review"])


class LandCheckRepo(BaseModel):
    model_config = ConfigDict(frozen=True)

    repo_id: str
    repo: str = Field(description="The repository's name.")
    target_branch: str
    conflicts: list[str] = Field(description="Paths that would conflict (empty: merges cleanly).")
    nothing_to_land: bool = Field(description="The target already contains the run's work.")
    checked_out_in: list[str] = Field(
        description="The user's worktrees with the target branch checked out: landing moves "
        "their files too."
    )


class LandCheckView(BaseModel):
    model_config = ConfigDict(frozen=True)

    repos: list[LandCheckRepo]
    conflicts: bool
    confirm: str | None = Field(
        description="The question to ask before merging, squashing or rebasing (a target is "
        "checked out in the user's worktree); null when none is needed."
    )


@router.get(
    "/runs/{run_ref}/land-check",
    dependencies=[require_scope("runs:read")],
    response_model=LandCheckView,
)
async def land_check_route(
    run_ref: str,
    svc: Svc,
    target_branch: Annotated[
        str | None, Query(description="Where to land (default: each repository's default).")
    ] = None,
) -> dict[str, Any]:
    """Conflicts, nothing to land, and checkouts of the target in the user's worktrees, so the
    UI and ``codeyard land`` can ask before landing into a checked-out branch. Changes nothing."""
    return await land_check.check(svc, run_ref, target_branch)
