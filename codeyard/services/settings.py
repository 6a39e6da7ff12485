"""Server settings: configured defaults, overridden by what an operator stored through the API.

``worktree_root`` comes from the configuration (the data directory) and cannot be changed here.
``max_concurrent_runs`` is read when the executor starts, so a change applies at the next start.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard.config import Settings
from codeyard.domain.errors import NotFound, ValidationFailed
from codeyard.sandbox import setting as sandbox_setting
from codeyard.services import sandbox as sandbox_service
from codeyard.services.context import Services
from codeyard.store import projects
from codeyard.store import settings as store

#: Settings that are stored; each key's default when nothing is stored.
STORED_DEFAULTS: dict[str, Any] = {
    "retention_days": None,
    "default_agent_id": None,
    "approval_timeout_hours": 10.0,
    "budgets": {"daily_usd": None, "monthly_usd": None},
    "auto_resume": False,
    "gates": {},
    #: Contain every process a run starts (``codeyard.sandbox``); only an admin may turn it off.
    "sandbox": "on",
    #: Landing a run (merge, squash, rebase, pull request) needs an approving review (issue 19).
    "require_review_to_merge": False,
}


def defaults(config: Settings) -> dict[str, Any]:
    """What the settings are when nothing is stored: the configuration, then built-in values."""
    return {
        "max_concurrent_runs": config.max_concurrent_runs,
        **{k: (dict(v) if isinstance(v, dict) else v) for k, v in STORED_DEFAULTS.items()},
    }


async def effective(engine: AsyncEngine, config: Settings) -> dict[str, Any]:
    """Defaults overridden by stored values, plus the read-only ``worktree_root``."""
    stored = await store.read(engine)
    values = defaults(config)
    for key, value in stored.items():
        if key == "budgets" and isinstance(value, dict):
            values["budgets"] = {**values["budgets"], **value}
        elif key == "gates" and not isinstance(value, dict):
            continue  # a null stored before PUT refused it: the defaults, not a broken GET
        elif key in values:
            values[key] = value
    values["worktree_root"] = str(config.worktree_root)
    values["sandbox"] = sandbox_setting.mode_of(stored)
    return values


async def current(svc: Services) -> dict[str, Any]:
    """The settings, with the sandbox's state (does bubblewrap work, the off warning)."""
    values = await effective(svc.engine, svc.settings)
    values["sandbox_status"] = await sandbox_service.status(svc)
    return values


async def retention_days(svc: Services) -> int | None:
    value = (await current(svc))["retention_days"]
    return int(value) if value is not None else None


async def update(svc: Services, changes: dict[str, Any]) -> dict[str, Any]:
    """Validate ``changes`` against the current settings and store them; returns the result.

    Fields left out keep their value, so a client may send back what ``GET`` returned.
    """
    now = await current(svc)
    errors: list[dict[str, Any]] = []
    root = changes.pop("worktree_root", None)
    if root is not None and root != now["worktree_root"]:
        errors.append(
            {
                "loc": ["body", "worktree_root"],
                "msg": "read-only: worktrees live under the data directory (CODEYARD_DATA_DIR)",
            }
        )
    agent_id = changes.get("default_agent_id")
    if agent_id is not None:
        try:
            async with svc.engine.connect() as conn:
                await projects.get_agent(conn, agent_id)
        except NotFound:
            errors.append(
                {"loc": ["body", "default_agent_id"], "msg": f"no agent profile '{agent_id}'"}
            )
    if changes.get("gates") is not None:
        # The policy engine loads with the first run or the first write here (issue 15).
        from codeyard.domain.policy import GateSettings

        GateSettings.from_mapping(changes["gates"], loc=("body", "gates"))  # 422 when unknown
    if errors:
        summary = "; ".join(f"{e['loc'][-1]}: {e['msg']}" for e in errors)
        raise ValidationFailed(f"The settings are not valid: {summary}", errors=errors)
    if "budgets" in changes:
        changes["budgets"] = {**now["budgets"], **(changes["budgets"] or {})}
    if changes:
        await store.save(svc.writer, changes)
    return await current(svc)
