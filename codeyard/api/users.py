"""``/api/users`` (admin): invite users, change roles, remove them, end their sessions."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, BackgroundTasks, Response
from pydantic import BaseModel, ConfigDict, Field

from codeyard.api.account_views import UserView
from codeyard.api.auth import Caller, require_scope
from codeyard.api.auth_routes import Password, Username
from codeyard.api.deps import Cursor, Limit, Svc, listing
from codeyard.api.email_login import Email
from codeyard.api.views import Page
from codeyard.services import auth, email_login
from codeyard.services import users as service
from codeyard.store.users import public

router = APIRouter(prefix="/users", tags=["users"], dependencies=[require_scope("admin")])
Role = Literal["admin", "member", "viewer"]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: Username
    password: Password
    role: Role = "member"


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    password: Password | None = None
    #: Where this user's sign-in codes go; ``null`` removes it (password sign-in only).
    email: Email | None = None


class RoleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role


class InviteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    role: Role = "member"
    username: Username | None = Field(default=None, description="Default: the email's local part.")


@router.get("", response_model=Page[UserView])
async def list_users(svc: Svc, limit: Limit = 50, cursor: Cursor = None) -> dict[str, Any]:
    rows, next_cursor = await service.list_users(svc, limit, cursor)
    return listing(list(rows), next_cursor)


@router.post("", status_code=201, response_model=UserView)
async def create_user(body: UserCreate, svc: Svc) -> dict[str, Any]:
    """A user with a first password (they can change it with POST /api/auth/password)."""
    return await service.create_user(svc, body.username, body.password, body.role)


@router.get("/{user_id}", response_model=UserView)
async def get_user(user_id: str, svc: Svc) -> dict[str, Any]:
    """A user by id or username."""
    return public(await service.find_user(svc, user_id))


@router.post("/invite", status_code=201, response_model=UserView)
async def invite_user(body: InviteBody, background: BackgroundTasks, svc: Svc) -> dict[str, Any]:
    """Invite someone by email: a user who signs in with emailed codes (POST
    /api/auth/request-otp), and a message telling them how. 400 without SMTP settings; 409
    when the email or username is taken."""
    user, message = await email_login.invite(svc, body.email, body.role, body.username)
    background.add_task(email_login.deliver, svc, message)
    return user


@router.patch("/{user_id}", response_model=UserView)
async def update_user(
    user_id: str, body: UserUpdate, principal: Caller, svc: Svc
) -> dict[str, Any]:
    """Change the role or email, or set a new password (which ends the user's sessions)."""
    actor = principal.user_id or "admin"
    return await service.update_user(svc, user_id, body.model_dump(exclude_unset=True), actor)


@router.patch("/{user_id}/role", response_model=UserView)
async def change_role(user_id: str, body: RoleBody, principal: Caller, svc: Svc) -> dict[str, Any]:
    """Change a member's role; recorded in GET /api/audit-log (``user.role``). 409 when it
    would leave no admin: make another user admin first."""
    return await service.update_user(
        svc, user_id, {"role": body.role}, principal.user_id or "admin"
    )


@router.delete("/{user_id}", status_code=204)
async def delete_user(user_id: str, svc: Svc) -> Response:
    """Remove a user, their sessions and tokens (409 for the last admin)."""
    await service.delete_user(svc, user_id)
    return Response(status_code=204)


@router.delete("/{user_id}/sessions", status_code=204)
async def revoke_sessions(user_id: str, svc: Svc) -> Response:
    """Sign a user out everywhere (their tokens stay; revoke those with DELETE /api/tokens)."""
    user = await service.find_user(svc, user_id)
    await auth.revoke_sessions(svc, user["id"])
    return Response(status_code=204)
