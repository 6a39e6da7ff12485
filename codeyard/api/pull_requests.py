"""Pull requests after they are opened (issue 21): merge on the forge, a project's list."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from codeyard.api.auth import require_scope
from codeyard.api.deps import Svc
from codeyard.api.review_views import PullRequestView
from codeyard.api.schemas import Body
from codeyard.prs.base import MergeMethod
from codeyard.services import pull_requests as pr_service

router = APIRouter(tags=["pull-requests"])


class MergeBody(Body):
    method: MergeMethod = "merge"
    sha: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{40}$",
        description="Merge only if the head is still this commit (the one you reviewed).",
    )


class ProjectPullRequest(BaseModel):
    run_id: str
    run_number: int
    run_title: str
    run_status: str
    repo_id: str | None
    url: str
    number: int
    state: str | None = Field(description="As recorded when opened; live state per run.")


@router.post(
    "/runs/{run_ref}/pull-request/merge",
    dependencies=[require_scope("git:merge")],
    response_model=PullRequestView,
)
async def merge_pull_request(
    run_ref: str, svc: Svc, body: MergeBody | None = None
) -> dict[str, Any]:
    """Merge the run's pull request on GitHub (merge, squash or rebase); 409 when GitHub will
    not (checks or reviews missing, conflicts, the head moved), naming what to do."""
    body = body or MergeBody()
    return await pr_service.merge(svc, run_ref, body.method, body.sha)


@router.get(
    "/projects/{project_ref}/pull-requests",
    dependencies=[require_scope("runs:read")],
    response_model=list[ProjectPullRequest],
)
async def project_pull_requests(project_ref: str, svc: Svc) -> list[dict[str, Any]]:
    return await pr_service.project_pull_requests(svc, project_ref)
