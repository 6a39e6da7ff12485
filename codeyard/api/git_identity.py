"""The caller's git identity (issue 19): the name and email commits of their runs carry."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import Field

from codeyard.api.auth import SIGNED_IN, Caller, require_scope
from codeyard.api.deps import Svc
from codeyard.api.schemas import Body
from codeyard.api.views import View
from codeyard.services import git_identity as service

router = APIRouter(tags=["auth"])
PATH = "/me/git-identity"


class GitIdentityBody(Body):
    name: str | None = Field(
        default=None, max_length=200, description="null: your username.", examples=["Ana Lima"]
    )
    email: str | None = Field(
        default=None,
        max_length=320,
        description="null: <username>@users.codeyard.invalid.",
        examples=["ana@example.com"],
    )


class GitIdentityView(View):
    #: What you set (``null``: the default is used).
    name: str | None
    email: str | None
    #: What your runs' commits carry now.
    effective_name: str
    effective_email: str


@router.get(PATH, dependencies=[require_scope(SIGNED_IN)], response_model=GitIdentityView)
async def get_git_identity(principal: Caller, svc: Svc) -> dict[str, Any]:
    """Author and committer of your runs' commits (the agent's and Codeyard's own)."""
    return await service.get(svc, principal)


@router.put(PATH, dependencies=[require_scope(SIGNED_IN)], response_model=GitIdentityView)
async def put_git_identity(body: GitIdentityBody, principal: Caller, svc: Svc) -> dict[str, Any]:
    """Set your name and email for commits; runs started from now on carry them (a run's next
    turn and its landing too). 400 for the admin token, which has no user."""
    return await service.put(svc, principal, body.name, body.email)
