"""A project's repository linked to a GitHub repository (its ``origin``), or unlinked (issue 21).
Project owners, members and admins only: it changes the shared checkout's remotes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from codeyard.api.auth import Caller, require_scope
from codeyard.api.deps import Svc
from codeyard.api.schemas import Body
from codeyard.services import github_link, ownership
from codeyard.services import projects as project_service

router = APIRouter(tags=["github"])


class LinkBody(Body):
    repository: str = Field(
        min_length=3,
        max_length=140,
        pattern=r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?/[A-Za-z0-9_.-]+$",
        description="owner/name on the configured GitHub (or Enterprise) host.",
    )
    repo_id: str | None = Field(
        default=None, min_length=1, max_length=80, description="Needed with several repos."
    )


class UnlinkBody(Body):
    repo_id: str | None = Field(default=None, min_length=1, max_length=80)


class LinkResult(BaseModel):
    repo_id: str
    remote: str = Field(description="origin, without credentials.")
    linked: bool = Field(description="Whether this request added (link) or kept (unlink) it.")


@router.post(
    "/projects/{project_ref}/github/link",
    dependencies=[require_scope("settings:write")],
    response_model=LinkResult,
)
async def link_project(
    project_ref: str, body: LinkBody, svc: Svc, principal: Caller
) -> dict[str, Any]:
    """Add ``origin`` pointing at the GitHub repository (checked with GitHub first); an origin
    elsewhere is never replaced (409 naming it)."""
    project = await project_service.get_project(svc, project_ref)
    ownership.require_project_manager(principal, project, "link its repository")
    return await github_link.link(svc, project_ref, body.repository, body.repo_id)


@router.post(
    "/projects/{project_ref}/github/unlink",
    dependencies=[require_scope("settings:write")],
    response_model=LinkResult,
)
async def unlink_project(
    project_ref: str, body: UnlinkBody, svc: Svc, principal: Caller
) -> dict[str, Any]:
    """Remove the ``origin`` a link added (409 for one the user set up)."""
    project = await project_service.get_project(svc, project_ref)
    ownership.require_project_manager(principal, project, "unlink its repository")
    return await github_link.unlink(svc, project_ref, body.repo_id)
