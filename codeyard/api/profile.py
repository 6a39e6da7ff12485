"""The caller's profile, picture and SSH key (issue 19): ``/api/me/profile``, ``/api/me/avatar``,
``/api/me/ssh-key``; and anyone's picture, ``/api/users/{id}/avatar``, for signed-in callers."""

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
    #: Your picture (``null``: none).
    avatar_url: str | None


class AvatarBody(Body):
    image: str = Field(
        max_length=400_000,
        description="A data URL of a PNG, JPEG, GIF or WebP picture of at most 256 KiB.",
        examples=["data:image/png;base64,iVBORw0KGgo…"],
    )


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


@router.put("/me/avatar", dependencies=[require_scope(SIGNED_IN)], response_model=ProfileView)
async def put_avatar(body: AvatarBody, principal: Caller, svc: Svc) -> dict[str, Any]:
    """Set your picture (its type is checked by its bytes; 413 over 256 KiB)."""
    return await service.set_avatar(svc, principal, body.image)


@router.delete("/me/avatar", status_code=204, dependencies=[require_scope(SIGNED_IN)])
async def delete_avatar(principal: Caller, svc: Svc) -> Response:
    await service.delete_avatar(svc, principal)
    return Response(status_code=204)


@router.get(
    "/users/{user_id}/avatar",
    dependencies=[require_scope(SIGNED_IN)],
    response_class=Response,
    responses={
        200: {"content": {t: {} for t in ("image/png", "image/jpeg", "image/gif", "image/webp")}}
    },
)
async def get_avatar(user_id: str, svc: Svc) -> Response:
    """A user's picture, for any signed-in caller (teammates see each other's); 404: none."""
    media_type, data = await service.avatar_of(svc, user_id)
    return Response(
        content=data,
        media_type=media_type,
        headers={
            "Cache-Control": "private, max-age=86400",  # the URL changes with the picture
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )


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
