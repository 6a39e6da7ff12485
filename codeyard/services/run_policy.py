"""One run's own policy (CodePiper's session policy): the policy sets assigned to the run and
rules that apply to this run only, on top of its profile's and project's sets.

The run's rules live in a run-scoped policy (``scope_run_id``), beside the allow rules
remembered from its approvals; the engine reads both at the next tool call, so a change applies
to a running agent without a restart. ``GET /api/runs/{id}/effective-policies`` shows the
merged result.
"""

from __future__ import annotations

from typing import Any

from codeyard.domain.errors import ValidationFailed
from codeyard.domain.events import utc_now
from codeyard.domain.ids import new_id
from codeyard.domain.policy import parse_rules
from codeyard.services.context import Services
from codeyard.store import policies, runs
from codeyard.store.writer import Tx

#: The run's own policy is the run-scoped one with this name (remembered rules have others).
RUN_POLICY = "Run policy"
#: Above project and profile sets (0 by default), below rules remembered from answers (1000).
PRIORITY = 500


def _own(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((r for r in rows if r["name"] == RUN_POLICY), None)


async def get(svc: Services, run_ref: str) -> dict[str, Any]:
    async with svc.engine.connect() as conn:
        run = await runs.get(conn, run_ref)
        scoped = await policies.run_scoped_policies(conn, run["id"])
    own = _own(scoped)
    return {
        "run_id": run["id"],
        "policy_set_ids": list(run.get("policy_set_ids") or []),
        "rules": list(own["rules"]) if own else [],
        "remembered": [
            {"policy_id": r["id"], "name": r["name"], "rules": r["rules"]}
            for r in scoped
            if r["name"] != RUN_POLICY
        ],
    }


async def put(svc: Services, run_ref: str, body: dict[str, Any]) -> dict[str, Any]:
    """Replace the run's policy sets and/or its own rules (fields left out stay)."""
    async with svc.engine.connect() as conn:
        run = await runs.get(conn, run_ref)
        scoped = await policies.run_scoped_policies(conn, run["id"])
        set_ids = body.get("policy_set_ids")
        if set_ids is not None:
            known = {s["id"] for s in await policies.sets_by_ids(conn, set_ids)}
            if missing := [i for i in set_ids if i not in known]:
                raise ValidationFailed(
                    f"Unknown policy sets: {', '.join(missing)}. List them with "
                    "GET /api/policy-sets.",
                    errors=[{"loc": ["body", "policy_set_ids"], "msg": f"unknown: {missing}"}],
                )
    rules = body.get("rules")
    if rules is not None:
        parse_rules(rules, policy=f"{RUN_POLICY} of run {run['number']}")  # 422 when invalid
    own = _own(scoped)

    async def job(tx: Tx) -> None:
        if set_ids is not None:
            await runs.update_fields(tx, run["id"], policy_set_ids=list(dict.fromkeys(set_ids)))
        if rules is None:
            return
        if own is not None:
            await policies.update_policy(tx, own["id"], {"rules": rules})
            return
        now = utc_now()
        await policies.insert_policy(
            tx,
            {
                "id": new_id("pol"),
                "name": RUN_POLICY,
                "enabled": True,
                "priority": PRIORITY,
                "rules": rules,
                "scope_run_id": run["id"],
                "created_at": now,
                "updated_at": now,
            },
        )

    await svc.writer.run(job)
    return await get(svc, run["id"])
