"""The caller's profile and SSH key (issue 19): ``/api/me/profile``, ``/api/me/ssh-key``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import Field

from codeyard.api.auth import ACCOUNT, SIGNED_IN, Caller, require_scope
from codeyard.api.deps import Svc
from codeyard.api.schemas import Body
from codeyard.api.views import View
from codeyard.services import profile as service

router = APIRouter(tags=["auth"])


class ProfileBody(Body):
    display_name: str | None = Field(
        default=None, max_length=200, description="null: your username.", examples=["Ana Lima"]
    )
    time_zone: str | None = Field(
        default=None,
        max_length=64,
        description="An IANA time zone (null: the browser's).",
        examples=["Europe/Lisbon"],
    )


class ProfileView(View):
    username: str
    display_name: str | None
    #: What others see: the display name, else the username.
    effective_name: str
    time_zone: str | None
    #: Set by an admin (invitation, PATCH /api/users/{id}); where sign-in codes go.
    email: str | None


class SshKeyView(View):
    #: ``ssh-ed25519 AAAA… <username>@codeyard``: add it to your git host as a deploy or user key.
    public_key: str
    #: ``SHA256:…``, as ``ssh-keygen -lf`` shows it.
    fingerprint: str
    created_at: str


@router.get("/me/profile", dependencies=[require_scope(SIGNED_IN)], response_model=ProfileView)
async def get_profile(principal: Caller, svc: Svc) -> dict[str, Any]:
    """Your display name, time zone and email (400 for the admin token, which has no user)."""
    return await service.get_profile(svc, principal)


@router.put("/me/profile", dependencies=[require_scope(SIGNED_IN)], response_model=ProfileView)
async def put_profile(body: ProfileBody, principal: Caller, svc: Svc) -> dict[str, Any]:
    """Set your display name and time zone (``null``: unset); 422 for an unknown time zone."""
    return await service.put_profile(svc, principal, body.display_name, body.time_zone)


@router.get("/me/ssh-key", dependencies=[require_scope(SIGNED_IN)], response_model=SshKeyView)
async def get_ssh_key(principal: Caller, svc: Svc) -> dict[str, Any]:
    """Your SSH public key and fingerprint (404 until you make one). The private key is never
    shown: it is stored encrypted and used only to push your runs' branches."""
    return await service.get_ssh_key(svc, principal)


@router.post(
    "/me/ssh-key",
    status_code=201,
    dependencies=[require_scope(ACCOUNT)],
    response_model=SshKeyView,
)
async def new_ssh_key(principal: Caller, svc: Svc) -> dict[str, Any]:
    """Make a new ed25519 key pair (replacing yours, if any); your runs' pushes over SSH use it
    from now on. Needs a password session or an admin token."""
    return await service.new_ssh_key(svc, principal)


@router.delete("/me/ssh-key", status_code=204, dependencies=[require_scope(ACCOUNT)])
async def delete_ssh_key(principal: Caller, svc: Svc) -> Response:
    """Forget your key pair; pushes fall back to the server account's own SSH setup."""
    await service.delete_ssh_key(svc, principal)
    return Response(status_code=204)
