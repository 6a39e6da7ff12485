"""Policy-set membership one policy at a time (CodePiper's ``POST /policy-sets/:id/policies``
and ``DELETE /policy-sets/:id/policies/:policyId``), and the settings' defaults (Codality's
``GET /api/settings/defaults``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from codeyard.api.auth import require_scope
from codeyard.api.deps import Svc
from codeyard.api.project_views import SettingsDefaultsView
from codeyard.api.schemas import Body
from codeyard.services import policies
from codeyard.services import settings as settings_service
from codeyard.store import policies as store

router = APIRouter(tags=["policies"])


class Member(Body):
    policy_id: str = Field(min_length=1, max_length=40)


class PolicySet(BaseModel):
    id: str
    name: str
    policy_ids: list[str] = Field(description="Members, in evaluation order.")
    created_at: str
    updated_at: str


async def _ids(svc: Svc, set_id: str) -> list[str]:
    async with svc.engine.connect() as conn:
        return list((await store.get_set(conn, set_id))["policy_ids"] or [])


def _view(row: dict[str, Any]) -> PolicySet:
    return PolicySet(
        **{k: row[k] for k in ("id", "name", "policy_ids", "created_at", "updated_at")}
    )


@router.post(
    "/policy-sets/{set_id}/policies",
    dependencies=[require_scope("settings:write")],
    response_model=PolicySet,
)
async def add_member(set_id: str, body: Member, svc: Svc) -> PolicySet:
    """Add a policy to the set (last; a member already in it stays where it is)."""
    ids = await _ids(svc, set_id)
    if body.policy_id not in ids:
        ids.append(body.policy_id)
    return _view(await policies.replace_set(svc, set_id, {"policy_ids": ids}))


@router.delete(
    "/policy-sets/{set_id}/policies/{policy_id}",
    dependencies=[require_scope("settings:write")],
    response_model=PolicySet,
)
async def remove_member(set_id: str, policy_id: str, svc: Svc) -> PolicySet:
    """Take a policy out of the set (the policy itself stays)."""
    ids = [i for i in await _ids(svc, set_id) if i != policy_id]
    return _view(await policies.replace_set(svc, set_id, {"policy_ids": ids}))


@router.get(
    "/settings/defaults",
    tags=["settings"],
    dependencies=[require_scope("settings:read")],
    response_model=SettingsDefaultsView,
)
async def settings_defaults(svc: Svc) -> dict[str, Any]:
    """What each stored setting is when nobody changed it (``PUT /api/settings`` overrides)."""
    return settings_service.defaults(svc.settings)
