"""Diff, checkpoints and landing: thin routes over ``services.review`` and ``.resolution``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse, Response

from codeyard.api.auth import Caller, require_action_scope, require_scope
from codeyard.api.deps import Svc
from codeyard.api.review_views import (
    DIFF_RESPONSES,
    BranchView,
    CommitsView,
    DiffFileView,
    PullRequestView,
    PushedView,
    RebasedView,
    RestoredView,
)
from codeyard.api.schemas import (
    CheckpointCreate,
    CommitBody,
    PushBody,
    RebaseBody,
    RenameBranchBody,
    ResolveBody,
)
from codeyard.api.views import CheckpointView, DiffStatsView, Page, RunView
from codeyard.services import resolution, review, run_git

router = APIRouter(tags=["review"])
Format = Annotated[Literal["text", "json"], Query(description="Unified text, or per-file JSON.")]


def _paths(path: list[str] | None) -> list[str] | None:
    return [p for p in path if p] if path else None


@router.get(
    "/runs/{run_ref}/diff",
    dependencies=[require_scope("runs:read")],
    response_model=Page[DiffFileView],
    responses=DIFF_RESPONSES,
)
async def run_diff(
    run_ref: str,
    svc: Svc,
    format: Format = "text",
    path: Annotated[list[str] | None, Query(description="Only these files or directories.")] = None,
    repo_id: str | None = None,
) -> Response | dict[str, Any]:
    """The worktree (committed, uncommitted and untracked) against the run's base commit."""
    result = await review.diff(svc, run_ref, format, _paths(path), repo_id)
    if isinstance(result, str):
        return PlainTextResponse(result, media_type="text/x-diff")
    return {"data": result, "next_cursor": None}


@router.get(
    "/runs/{run_ref}/diff/stats",
    dependencies=[require_scope("runs:read")],
    response_model=DiffStatsView,
)
async def run_diff_stats(run_ref: str, svc: Svc) -> dict[str, int]:
    return await review.stats(svc, run_ref)


@router.get(
    "/runs/{run_ref}/checkpoints",
    dependencies=[require_scope("runs:read")],
    response_model=Page[CheckpointView],
)
async def list_checkpoints(run_ref: str, svc: Svc) -> dict[str, Any]:
    """One per turn (automatic) plus manual ones, oldest first."""
    return {"data": await review.list_checkpoints(svc, run_ref), "next_cursor": None}


@router.post(
    "/runs/{run_ref}/checkpoints",
    dependencies=[require_scope("runs:write")],
    status_code=201,
    response_model=CheckpointView,
)
async def create_checkpoint(
    run_ref: str, svc: Svc, body: CheckpointCreate | None = None
) -> dict[str, Any]:
    return await review.create_checkpoint(svc, run_ref, body.description if body else None)


@router.post(
    "/checkpoints/{checkpoint_id}/restore",
    dependencies=[require_scope("runs:control")],
    response_model=RestoredView,
)
async def restore_checkpoint(checkpoint_id: str, svc: Svc) -> dict[str, Any]:
    """Worktree back to the checkpoint; the state before is checkpointed first (undo)."""
    return await review.restore(svc, checkpoint_id)


@router.get(
    "/checkpoints/{checkpoint_id}/diff",
    dependencies=[require_scope("runs:read")],
    response_model=Page[DiffFileView],
    responses=DIFF_RESPONSES,
)
async def checkpoint_diff(
    checkpoint_id: str,
    svc: Svc,
    against: Annotated[str, Query(description="current, base, or a checkpoint id.")] = "current",
    format: Format = "text",
) -> Response | dict[str, Any]:
    """From ``against`` to the checkpoint (against ``current``: what a restore would change)."""
    result = await review.compare(svc, checkpoint_id, against, format)
    if isinstance(result, str):
        return PlainTextResponse(result, media_type="text/x-diff")
    return {"data": result, "next_cursor": None}


@router.post(
    "/runs/{run_ref}/resolve",
    dependencies=[require_scope("git:merge"), require_action_scope({"create_pr": "git:push"})],
    response_model=RunView,
)
async def resolve(run_ref: str, body: ResolveBody, svc: Svc, principal: Caller) -> dict[str, Any]:
    """Land the run: merge, squash, rebase, create_pr, discard or agent_merge.

    Conflicts answer 409 with ``conflicts`` and change nothing. A ``target_branch`` that is
    another user's run branch is refused (403) unless the caller is an admin.
    """
    data = body.data() | {"action": body.action}
    return await resolution.resolve(svc, run_ref, data, principal)


@router.get(
    "/runs/{run_ref}/pull-request",
    dependencies=[require_scope("runs:read")],
    response_model=PullRequestView,
)
async def pull_request(run_ref: str, svc: Svc) -> dict[str, Any]:
    """The run's pull request as the host reports it now: state, checks, review state."""
    return await resolution.pull_request(svc, run_ref)


@router.post(
    "/runs/{run_ref}/commit", dependencies=[require_scope("git:merge")], response_model=CommitsView
)
async def commit(run_ref: str, svc: Svc, body: CommitBody | None = None) -> dict[str, Any]:
    return await run_git.commit(svc, run_ref, body.message if body else None)


@router.post(
    "/runs/{run_ref}/push", dependencies=[require_scope("git:push")], response_model=PushedView
)
async def push(run_ref: str, svc: Svc, body: PushBody | None = None) -> dict[str, Any]:
    """Push the run branch to the repository's remote (``--force-with-lease`` when forced)."""
    return await run_git.push(svc, run_ref, body.force if body else False)


@router.post(
    "/runs/{run_ref}/rebase", dependencies=[require_scope("git:merge")], response_model=RebasedView
)
async def rebase(run_ref: str, svc: Svc, body: RebaseBody | None = None) -> dict[str, Any]:
    """Rebase the run branch onto the latest target; conflicts → 409, branch restored."""
    return await run_git.rebase(svc, run_ref, body.onto if body else None)


@router.post(
    "/runs/{run_ref}/rename-branch",
    dependencies=[require_scope("git:merge")],
    response_model=RunView,
)
async def rename_branch(run_ref: str, body: RenameBranchBody, svc: Svc) -> dict[str, Any]:
    return await run_git.rename_branch(svc, run_ref, body.name)


@router.get(
    "/projects/{project_ref}/branches",
    dependencies=[require_scope("runs:read")],
    response_model=Page[BranchView],
)
async def project_branches(project_ref: str, svc: Svc) -> dict[str, Any]:
    """Every branch of every repository, with ahead/behind and the run it belongs to."""
    return {"data": await run_git.project_branches(svc, project_ref), "next_cursor": None}
