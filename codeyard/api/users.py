"""``/api/users`` (admin): invite users, change roles, remove them, end their sessions."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict

from codeyard.api.account_views import UserView
from codeyard.api.auth import require_scope
from codeyard.api.auth_routes import Password, Username
from codeyard.api.deps import Cursor, Limit, Svc, listing
from codeyard.api.views import Page
from codeyard.services import auth
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


@router.patch("/{user_id}", response_model=UserView)
async def update_user(user_id: str, body: UserUpdate, svc: Svc) -> dict[str, Any]:
    """Change the role, or set a new password (which ends the user's sessions)."""
    return await service.update_user(svc, user_id, body.model_dump(exclude_unset=True))


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
