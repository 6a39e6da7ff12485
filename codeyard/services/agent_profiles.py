"""Agent profiles: create, change, read. Secrets in ``provider_config.env`` are write-only.

A profile's ``provider_config.env`` (API keys for the CLI, typically) is sealed with the data
dir's key into the ``env_sealed`` column; the stored and shown ``provider_config.env`` holds
only the names, each with :data:`MASK`, like env sets. A change that sends :data:`MASK` keeps
the stored value. Runs of the profile carry a reference (``agent_env_id``), and the executor
decrypts the values into the agent's environment at each turn (``executor.turns``).
"""

from __future__ import annotations

from typing import Any

from codeyard.agents import registry
from codeyard.auth.principal import Principal
from codeyard.crypto import secret_box
from codeyard.domain.errors import ValidationFailed
from codeyard.domain.events import utc_now
from codeyard.domain.ids import new_id
from codeyard.services import env_sets as env_set_service
from codeyard.services import sandbox as sandbox_service
from codeyard.services.context import Services
from codeyard.store import projects

MASK = env_set_service.MASK
#: The run option naming the profile whose sealed ``env`` the executor adds (store.projects).
AGENT_ENV = projects.AGENT_ENV


def public(row: dict[str, Any]) -> dict[str, Any]:
    """What the API shows of a profile: never the sealed values."""
    return {k: v for k, v in row.items() if k != "env_sealed"}


def _seal(
    svc: Services, agent_id: str, config: dict[str, Any], current: dict[str, Any] | None
) -> tuple[dict[str, Any], str | None]:
    """(``config`` with ``env`` masked, the sealed values) — ``MASK`` keeps a stored value."""
    env = config.get("env")
    if not isinstance(env, dict) or not env:
        return config, None
    box = secret_box(svc.settings.secret_key_path)
    stored = projects.profile_env(box, current) if current is not None else {}
    kept = [k for k, v in env.items() if v == MASK]
    if unknown := [k for k in kept if k not in stored]:
        raise ValidationFailed(
            f"provider_config.env {', '.join(unknown)} have no stored value to keep; send "
            f"their values instead of '{MASK}'.",
            errors=[
                {"loc": ["body", "provider_config", "env", k], "msg": "no value"} for k in unknown
            ],
        )
    values = {str(k): (stored[k] if v == MASK else str(v)) for k, v in env.items()}
    masked = {**config, "env": dict.fromkeys(values, MASK)}
    return masked, projects.seal_profile_env(box, agent_id, values)


async def create(svc: Services, principal: Principal, body: dict[str, Any]) -> dict[str, Any]:
    registry.get(body["provider"]).validate_options(body["provider_config"])
    sandbox_service.check_admin_options(principal, body["provider_config"], "provider_config")
    await env_set_service.check_ids(svc, body["env_set_ids"], principal)
    now = utc_now()
    agent_id = new_id("agt")
    config, sealed = _seal(svc, agent_id, body["provider_config"], None)
    values = {
        "id": agent_id,
        **body,
        "provider_config": config,
        "env_sealed": sealed,
        "created_at": now,
        "updated_at": now,
    }
    await svc.writer.run(lambda tx: projects.insert_agent(tx, values))
    return public(values)


async def update(
    svc: Services, principal: Principal, agent_id: str, changes: dict[str, Any]
) -> dict[str, Any]:
    async with svc.engine.connect() as conn:
        current = await projects.get_agent(conn, agent_id)
    provider = registry.get(changes.get("provider") or current["provider"])
    provider.validate_options(changes.get("provider_config", current["provider_config"]))
    if changes.get("provider_config") is not None:
        sandbox_service.check_admin_options(
            principal, changes["provider_config"], "provider_config"
        )
        config, sealed = _seal(svc, agent_id, changes["provider_config"], current)
        changes = {**changes, "provider_config": config, "env_sealed": sealed}
    await env_set_service.check_ids(svc, changes.get("env_set_ids") or [], principal)
    await svc.writer.run(lambda tx: projects.update_agent(tx, agent_id, changes))
    return await get(svc, agent_id)


async def get(svc: Services, agent_id: str) -> dict[str, Any]:
    async with svc.engine.connect() as conn:
        return public(await projects.get_agent(conn, agent_id))


async def list_page(svc: Services, limit: int, cursor: str | None) -> dict[str, Any]:
    async with svc.engine.connect() as conn:
        rows, next_cursor = await projects.list_agents(conn, limit, cursor)
    return {"data": [public(r) for r in rows], "next_cursor": next_cursor}
