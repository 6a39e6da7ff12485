"""Policies and policy sets: validated on the way in, shown merged for a run."""

from __future__ import annotations

from typing import Any

from codeyard.domain.events import utc_now
from codeyard.domain.ids import new_id
from codeyard.domain.policy import compile_policies, parse_rules
from codeyard.policy import context as policy_context
from codeyard.services.context import Services
from codeyard.store import policies, runs


def _validated(body: dict[str, Any]) -> dict[str, Any]:
    parse_rules(body.get("rules", []), policy=body.get("name") or "policy")
    return body


async def create_policy(svc: Services, body: dict[str, Any]) -> dict[str, Any]:
    _validated(body)
    now = utc_now()
    values = {
        "id": new_id("pol"),
        "name": body["name"],
        "enabled": body.get("enabled", True),
        "priority": body.get("priority", 0),
        "rules": body.get("rules", []),
        "scope_run_id": None,
        "created_at": now,
        "updated_at": now,
    }
    await svc.writer.run(lambda tx: policies.insert_policy(tx, values))
    return values


async def replace_policy(svc: Services, policy_id: str, body: dict[str, Any]) -> dict[str, Any]:
    async with svc.engine.connect() as conn:
        current = await policies.get_policy(conn, policy_id)
    merged = {**current, **body}
    _validated(merged)
    changes = {k: merged[k] for k in ("name", "enabled", "priority", "rules")}
    await svc.writer.run(lambda tx: policies.update_policy(tx, policy_id, changes))
    async with svc.engine.connect() as conn:
        return await policies.get_policy(conn, policy_id)


async def create_set(svc: Services, body: dict[str, Any]) -> dict[str, Any]:
    async with svc.engine.connect() as conn:
        for pid in body.get("policy_ids", []):
            await policies.get_policy(conn, pid)  # 404 for an unknown policy
    now = utc_now()
    values = {
        "id": new_id("pset"),
        "name": body["name"],
        "policy_ids": body.get("policy_ids", []),
        "created_at": now,
        "updated_at": now,
    }
    await svc.writer.run(lambda tx: policies.insert_set(tx, values))
    return values


async def replace_set(svc: Services, set_id: str, body: dict[str, Any]) -> dict[str, Any]:
    async with svc.engine.connect() as conn:
        await policies.get_set(conn, set_id)
        for pid in body.get("policy_ids", []):
            await policies.get_policy(conn, pid)
    await svc.writer.run(lambda tx: policies.update_set(tx, set_id, body))
    async with svc.engine.connect() as conn:
        return await policies.get_set(conn, set_id)


async def effective(svc: Services, ref: str) -> dict[str, Any]:
    """The ordered rule list the engine uses for this run, each with the policy it came from."""
    async with svc.engine.connect() as conn:
        run = await runs.get(conn, ref)
        rows = await policy_context.policy_rows(conn, run)
        ctx = await policy_context.build(conn, run, svc.settings.default_permission_mode)
    by_id = {r["id"]: r for r in rows}
    compiled = compile_policies(policy_context.to_policy(r) for r in rows)
    ordered = []
    for rule in compiled.rules:
        policy_id = rule.id.split("#", 1)[0].removeprefix("policy:")
        policy = by_id.get(policy_id, {})
        index = int(rule.id.rsplit("#", 1)[-1]) if "#" in rule.id else 0
        source = policy.get("rules", [{}])[index] if policy else {}
        ordered.append(
            {
                "rule": rule.id,
                "policy_id": policy_id,
                "policy": policy.get("name"),
                "priority": policy.get("priority"),
                **source,
            }
        )
    return {
        "run_id": run["id"],
        "trusted": ctx.trusted,
        "permission_mode": ctx.permission_mode,
        "rules": ordered,
    }
