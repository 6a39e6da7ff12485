"""An agent on a ticket, its diff and landing, and reviews: thin routes over
``codeyard.tickets.agent`` and ``.reviews`` (which reuse the run services)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import PlainTextResponse, Response

from codeyard.api.auth import Caller, require_scope
from codeyard.api.deps import Svc, listing
from codeyard.api.review_views import DIFF_RESPONSES, DiffFileView
from codeyard.api.ticket_models import (
    AgentStartBody,
    AgentStatusView,
    MergeBody,
    PullRequestBody,
    ReviewCreate,
    ReviewResult,
    ReviewView,
    RunReviewBody,
    TicketMessageBody,
)
from codeyard.api.views import DiffStatsView, Page, RunView
from codeyard.tickets import agent, reviews

router = APIRouter(tags=["tickets"])
T = "/projects/{project_ref}/tickets/{number}"
N = Annotated[int, Path(ge=1, le=2_000_000_000, description="The ticket's number.")]


@router.post(
    f"{T}/agent/start",
    dependencies=[require_scope("runs:write")],
    status_code=201,
    response_model=RunView,
)
async def start_agent(
    project_ref: str, number: N, svc: Svc, principal: Caller, body: AgentStartBody | None = None
) -> dict[str, Any]:
    """A run for the ticket (prompt: the ticket and its comments), linked as its current run;
    the ticket moves to ``in_progress``. 409 while its current run is still working."""
    options = body.model_dump(exclude_unset=True) if body else {}
    return await agent.start(svc, principal, project_ref, number, options)


@router.post(
    f"{T}/agent/stop", dependencies=[require_scope("runs:control")], response_model=RunView
)
async def stop_agent(project_ref: str, number: N, svc: Svc, principal: Caller) -> dict[str, Any]:
    """Cancel the current run (its creator or an admin)."""
    return await agent.stop(svc, principal, project_ref, number)


@router.post(
    f"{T}/agent/message", dependencies=[require_scope("runs:write")], response_model=RunView
)
async def message_agent(
    project_ref: str, number: N, body: TicketMessageBody, svc: Svc, principal: Caller
) -> dict[str, Any]:
    """Answer the agent, queue a message mid-turn, or start its next turn."""
    return await agent.message(svc, principal, project_ref, number, body.text)


@router.get(
    f"{T}/agent/status", dependencies=[require_scope("runs:read")], response_model=AgentStatusView
)
async def agent_status(project_ref: str, number: N, svc: Svc) -> dict[str, Any]:
    return await agent.status(svc, project_ref, number)


@router.get(
    f"{T}/diff",
    dependencies=[require_scope("runs:read")],
    response_model=Page[DiffFileView],
    responses=DIFF_RESPONSES,
)
async def ticket_diff(
    project_ref: str,
    number: N,
    svc: Svc,
    format: Annotated[Literal["text", "json"], Query()] = "text",
    path: Annotated[list[str] | None, Query(description="Only these files.")] = None,
) -> Response | dict[str, Any]:
    """The current run's diff against its base (like ``GET /api/runs/{id}/diff``)."""
    result = await agent.diff(
        svc, project_ref, number, format, [p for p in path or [] if p] or None
    )
    if isinstance(result, str):
        return PlainTextResponse(result, media_type="text/x-diff")
    return listing(list(result), None)


@router.get(
    f"{T}/diff/stats", dependencies=[require_scope("runs:read")], response_model=DiffStatsView
)
async def ticket_diff_stats(project_ref: str, number: N, svc: Svc) -> dict[str, int]:
    return await agent.diff_stats(svc, project_ref, number)


@router.post(
    f"{T}/worktree/merge", dependencies=[require_scope("git:merge")], response_model=RunView
)
async def merge_ticket(
    project_ref: str, number: N, svc: Svc, principal: Caller, body: MergeBody | None = None
) -> dict[str, Any]:
    """Land the current run (merge, squash or rebase) like ``POST /api/runs/{id}/resolve``;
    the ticket becomes ``done``. 409 with ``review_required`` under ``require_review_to_merge``."""
    data = body.model_dump(exclude_unset=True) if body else {}
    resolve = {"action": data.pop("strategy", "merge"), **data}
    return await agent.land(svc, principal, project_ref, number, resolve)


@router.post(
    f"{T}/worktree/discard", dependencies=[require_scope("git:merge")], response_model=RunView
)
async def discard_ticket(
    project_ref: str, number: N, svc: Svc, principal: Caller
) -> dict[str, Any]:
    """Discard the current run's worktree and branch; the ticket goes back to ``backlog``."""
    return await agent.land(svc, principal, project_ref, number, {"action": "discard"})


@router.post(f"{T}/pull-request", dependencies=[require_scope("git:push")], response_model=RunView)
async def ticket_pull_request(
    project_ref: str,
    number: N,
    svc: Svc,
    principal: Caller,
    body: PullRequestBody | None = None,
) -> dict[str, Any]:
    """Push the current run's branch and open a pull request (``resolve create_pr``)."""
    data = body.model_dump(exclude_unset=True) if body else {}
    return await agent.land(svc, principal, project_ref, number, {"action": "create_pr", **data})


@router.get(
    f"{T}/reviews", dependencies=[require_scope("runs:read")], response_model=Page[ReviewView]
)
async def list_ticket_reviews(project_ref: str, number: N, svc: Svc) -> dict[str, Any]:
    """Reviews of every run of the ticket, oldest first."""
    return listing(list(await reviews.for_ticket(svc, project_ref, number)), None)


@router.post(
    f"{T}/reviews",
    dependencies=[require_scope("runs:write")],
    status_code=201,
    response_model=ReviewResult,
)
async def review_ticket(
    project_ref: str, number: N, body: ReviewCreate, svc: Svc, principal: Caller
) -> dict[str, Any]:
    """Review the current run: ``approved``, ``changes_requested`` (sent to the agent as its
    next turn) or ``commented``; comments anchor to files the run changed (422 otherwise)."""
    comments = [c.model_dump() for c in body.comments]
    return await reviews.submit_for_ticket(
        svc, principal, project_ref, number, body.verdict, body.body, comments
    )


@router.get(
    "/runs/{run_id}/reviews",
    dependencies=[require_scope("runs:read")],
    response_model=Page[ReviewView],
)
async def list_run_reviews(run_id: str, svc: Svc) -> dict[str, Any]:
    return listing(list(await reviews.for_run(svc, run_id)), None)


@router.post(
    "/runs/{run_id}/approve",
    dependencies=[require_scope("git:merge")],
    status_code=201,
    response_model=ReviewResult,
)
async def approve_run(
    run_id: str, svc: Svc, principal: Caller, body: RunReviewBody | None = None
) -> dict[str, Any]:
    """An approving review of a plain run (project owner, members or an admin; not only its
    creator): what ``require_review_to_merge`` waits for."""
    return await reviews.submit_for_run(
        svc, principal, run_id, "approved", body.notes if body else ""
    )


@router.post(
    "/runs/{run_id}/reject",
    dependencies=[require_scope("git:merge")],
    status_code=201,
    response_model=ReviewResult,
)
async def reject_run(
    run_id: str, svc: Svc, principal: Caller, body: RunReviewBody | None = None
) -> dict[str, Any]:
    """``changes_requested`` on a plain run; the notes become the agent's next turn."""
    return await reviews.submit_for_run(
        svc, principal, run_id, "changes_requested", body.notes if body else ""
    )
