"""Connecting a GitHub App through the manifest flow (issue 21).

``POST /api/github/app/manifest`` (admin) returns a manifest and where the browser posts it.
GitHub then sends the browser to ``GET /api/github/app/callback`` and, after installing, to
``GET /api/github/app/setup``: both are public by design (the browser arrives from GitHub, without
a Codeyard token). The callback's permission is the single-use ``state`` the admin's manifest
request created; the setup's is GitHub's own word, asked with the App's key, that the
installation is this App's. Neither shows a secret; both answer with a redirect.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field

from codeyard.api.auth import require_scope
from codeyard.api.deps import Svc
from codeyard.api.schemas import Body
from codeyard.services import github_app

router = APIRouter(tags=["github"])
public = APIRouter(tags=["github"])


class ManifestBody(Body):
    #: GitHub App names are at most 34 characters and unique on GitHub.
    name: str = Field(default="Codeyard", min_length=1, max_length=34)
    organization: str | None = Field(
        default=None,
        min_length=1,
        max_length=39,
        pattern=r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$",
        description="Create the App owned by this organization (null or left out: by the "
        "person's account).",
    )


class ManifestStart(BaseModel):
    post_url: str = Field(description="POST the manifest here from the browser (a form field).")
    manifest: dict[str, Any]
    state: str = Field(description="Single use, valid one hour; GitHub hands it back.")


class Installation(BaseModel):
    id: int
    account: str


class AppStatus(BaseModel):
    configured: bool
    app_id: int | None = None
    slug: str | None = None
    html_url: str | None = None
    owner: str | None = None
    installations: list[Installation]
    token_expires_at: str | None = None


class NewRepoBody(Body):
    #: GitHub's repository names: letters, digits, ``-``, ``_`` and ``.``, at most 100.
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    private: bool = True
    installation_id: int | None = Field(
        default=None, ge=1, le=2**53, description="Needed when the App has several."
    )


class AppRepo(BaseModel):
    full_name: str
    private: bool
    html_url: str
    clone_url: str
    installation_id: int


@router.post(
    "/github/app/manifest",
    dependencies=[require_scope("admin")],
    response_model=ManifestStart,
)
async def start_manifest(body: ManifestBody, svc: Svc) -> dict[str, Any]:
    """A GitHub App manifest for this server (webhooks to ``/api/github/webhooks``, the
    permissions the pull-request loop needs) and the URL to post it to."""
    return await github_app.start(svc, body.name, body.organization)


@public.get("/github/app/callback", response_class=RedirectResponse, status_code=303)
async def manifest_callback(
    svc: Svc,
    code: Annotated[str, Query(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_-]+$")],
    state: Annotated[str, Query(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_-]+$")],
) -> RedirectResponse:
    """GitHub created the App: store it (secrets encrypted), then go on to install it."""
    return RedirectResponse(await github_app.callback(svc, code, state), status_code=303)


@public.get("/github/app/setup", response_class=RedirectResponse, status_code=303)
async def installed(
    svc: Svc,
    installation_id: Annotated[int, Query(ge=1, le=2**53)],
    setup_action: Annotated[str | None, Query(max_length=20)] = None,
) -> RedirectResponse:
    """GitHub installed the App: record the installation once GitHub confirms it."""
    return RedirectResponse(await github_app.setup(svc, installation_id), status_code=303)


@router.get(
    "/github/app/status", dependencies=[require_scope("settings:read")], response_model=AppStatus
)
async def app_status(svc: Svc) -> dict[str, Any]:
    """Whether an App is connected, its installations and when the current token expires."""
    return await github_app.status(svc)


@router.get(
    "/github/app/repos",
    dependencies=[require_scope("settings:read")],
    response_model=list[AppRepo],
)
async def app_repos(svc: Svc) -> list[dict[str, Any]]:
    """The repositories the App's installations may reach (404 without an App)."""
    return await github_app.repositories(svc)


@router.post(
    "/github/app/repos",
    status_code=201,
    dependencies=[require_scope("admin")],
    response_model=AppRepo,
)
async def create_app_repo(body: NewRepoBody, svc: Svc) -> dict[str, Any]:
    """A new repository (with a first commit) in the organization the App is installed on."""
    return await github_app.create_repository(svc, body.name, body.private, body.installation_id)
