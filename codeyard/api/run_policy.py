"""One run's own policy: its policy sets and rules for it alone (CodePiper's session policy)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from codeyard.api.auth import require_scope
from codeyard.api.deps import Svc
from codeyard.api.schemas import Body
from codeyard.services import run_policy

router = APIRouter(tags=["policies"])


class RunPolicyBody(Body):
    policy_set_ids: list[str] | None = Field(
        default=None, description="Replace the run's own policy sets (profile/project ones stay)."
    )
    rules: list[dict[str, Any]] | None = Field(
        default=None,
        max_length=500,
        description="Replace the rules that apply to this run only (tool, command, path, action).",
    )


class Remembered(BaseModel):
    policy_id: str
    name: str
    rules: list[dict[str, Any]]


class RunPolicy(BaseModel):
    run_id: str
    policy_set_ids: list[str]
    rules: list[dict[str, Any]]
    remembered: list[Remembered] = Field(description="Allow rules remembered from approvals.")


@router.get(
    "/runs/{run_ref}/policy", dependencies=[require_scope("runs:read")], response_model=RunPolicy
)
async def get_run_policy(run_ref: str, svc: Svc) -> RunPolicy:
    return RunPolicy(**await run_policy.get(svc, run_ref))


@router.put(
    "/runs/{run_ref}/policy",
    dependencies=[require_scope("runs:control")],
    response_model=RunPolicy,
)
async def put_run_policy(run_ref: str, body: RunPolicyBody, svc: Svc) -> RunPolicy:
    """Change the run's policy; it applies from the agent's next tool call."""
    return RunPolicy(**await run_policy.put(svc, run_ref, body.data()))
