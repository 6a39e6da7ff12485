"""Server settings: ``GET/PUT /api/settings``."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, field_validator

from codeyard.api.auth import Caller, require_scope
from codeyard.api.deps import Svc
from codeyard.config import MAX_CONCURRENT_RUNS
from codeyard.services import sandbox as sandbox_service
from codeyard.services import settings as settings_service

router = APIRouter(tags=["settings"])


class SandboxStatus(BaseModel):
    """Whether the sandbox works here, read-only."""

    mode: Literal["on", "off"]
    available: bool = Field(description="bubblewrap was found and can create a sandbox here.")
    bwrap: str | None = Field(description="The bubblewrap binary used (CODEYARD_BWRAP_PATH).")
    version: str | None
    problem: str | None = Field(description="Why it cannot run, with the fix.")
    warning: str | None = Field(description="Set while the sandbox is off: say so loudly.")


class Budgets(BaseModel):
    model_config = ConfigDict(extra="forbid")

    daily_usd: float | None = Field(default=None, ge=0, description="Daily spending cap (USD).")
    monthly_usd: float | None = Field(default=None, ge=0, description="Monthly cap (USD).")


class SettingsView(BaseModel):
    max_concurrent_runs: int = Field(
        description="Runs worked on at once. Read when the server starts: a change applies at "
        "the next start."
    )
    worktree_root: str = Field(description="Where worktrees live (read-only, from the config).")
    retention_days: int | None = Field(
        description="Remove worktrees of runs finished this many days ago (null: keep forever)."
    )
    default_agent_id: str | None
    approval_timeout_hours: float
    budgets: Budgets
    auto_resume: bool
    gates: dict[str, str] = Field(
        description="Hard gates set to 'deny' instead of the default 'ask', by gate id."
    )
    sandbox: Literal["on", "off"] = Field(
        description="'on': every agent, setup/cleanup script and script-provider shell runs "
        "in a bubblewrap sandbox with an allowlisted environment. Only an admin may set 'off'."
    )
    sandbox_status: SandboxStatus
    require_review_to_merge: bool = Field(
        description="Landing a run (merge, squash, rebase, pull request) needs an approving "
        "review (POST /api/runs/{id}/approve, or a ticket review); 409 otherwise."
    )


_NOT_NULL = (
    "max_concurrent_runs",
    "approval_timeout_hours",
    "auto_resume",
    "budgets",
    "gates",
    "sandbox",
    "require_review_to_merge",
)


class SettingsUpdate(BaseModel):
    """Fields left out keep their value; ``worktree_root`` may be sent back unchanged only."""

    model_config = ConfigDict(extra="forbid")

    max_concurrent_runs: int | None = Field(default=None, ge=1, le=MAX_CONCURRENT_RUNS)
    worktree_root: str | None = None
    retention_days: int | None = Field(default=None, ge=1, le=36500)
    default_agent_id: str | None = None
    approval_timeout_hours: float | None = Field(default=None, gt=0, le=24 * 365)
    budgets: Budgets | None = None
    auto_resume: bool | None = None
    gates: dict[str, str] | None = None
    sandbox: Literal["on", "off"] | None = None
    require_review_to_merge: bool | None = None
    sandbox_status: dict[str, Any] | None = Field(
        default=None, description="Read-only: ignored, so GET's answer may be sent back."
    )

    @field_validator(*_NOT_NULL, mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may not be null")
        return value


@router.get("/settings", response_model=SettingsView, dependencies=[require_scope("settings:read")])
async def get_settings(svc: Svc) -> dict[str, Any]:
    """Current settings: stored values over the configured defaults."""
    return await settings_service.current(svc)


@router.put(
    "/settings", response_model=SettingsView, dependencies=[require_scope("settings:write")]
)
async def put_settings(body: SettingsUpdate, svc: Svc, principal: Caller) -> dict[str, Any]:
    """Change settings (422 when a value is not acceptable); returns them all.

    ``sandbox: "off"`` needs an admin (403 otherwise).

    ``retention_days``, budgets, the approval timeout and ``auto_resume`` take effect at once;
    ``max_concurrent_runs`` is stored now and applies when the server next starts.
    """
    changes = body.model_dump(exclude_unset=True)
    changes.pop("sandbox_status", None)
    if "sandbox" in changes:
        sandbox_service.check_mode_change(principal, changes["sandbox"])
    return await settings_service.update(svc, changes)
