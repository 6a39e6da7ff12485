"""The workflow dry run: a static check of a definition, its resolved graph, the profiles and
repositories it would use, and what it would cost (from recent runs of the same profile or
provider)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from codeyard.agents import registry
from codeyard.domain.errors import NotFound, ValidationFailed
from codeyard.services import workflow_executions as executions
from codeyard.services import workflows as definitions
from codeyard.services.context import Services
from codeyard.store import projects, schema
from codeyard.workflows import graph as graphs
from codeyard.workflows import model, store


async def _cost_per_run(svc: Services, provider: str | None, agent_id: str | None) -> float | None:
    R = schema.runs
    stmt = (
        select(R.c.usage)
        .where(R.c.status.in_(("review", "completed")))
        .order_by(R.c.created_at.desc())
        .limit(50)
    )
    stmt = (
        stmt.where(R.c.agent_id == agent_id) if agent_id else stmt.where(R.c.provider == provider)
    )
    async with svc.engine.connect() as conn:
        rows = (await conn.execute(stmt)).all()
    costs = [float((r.usage or {}).get("cost_usd") or 0) for r in rows]
    return sum(costs) / len(costs) if costs else None


def _multiplier(step: model.Step, graph: graphs.Graph) -> int:
    """How many times a nested step may run (loops and literal foreach lists)."""
    times, sid = 1, graph.parent.get(step.id)
    while sid is not None:
        outer = graph.steps[sid]
        if isinstance(outer, model.LoopStep):
            times *= outer.max_iterations
        elif isinstance(outer, model.ForeachStep) and isinstance(outer.items, list):
            times *= len(outer.items)
        sid = graph.parent.get(sid)
    return times


async def validate(svc: Services, body: dict[str, Any], workflow_id: str | None) -> dict[str, Any]:
    """Static check, resolved graph, profiles and repositories used, and a cost estimate from
    the average of recent runs of the same profile or provider."""
    if workflow_id is not None and not body.get("source") and not body.get("definition"):
        async with svc.engine.connect() as conn:
            body = {
                **body,
                "definition": (await store.get_workflow(conn, workflow_id))["definition"],
            }
    defn, _ = definitions.parse(body)
    graph = graphs.resolve(defn)
    problems: list[dict[str, Any]] = []
    if "variables" in body:
        try:
            graphs.check_inputs(defn, dict(body.get("variables") or {}))
        except ValidationFailed as exc:
            problems += exc.extra.get("errors", [])
    runs_view: list[dict[str, Any]] = []
    total, unknown = 0.0, []
    for sid, step in graph.steps.items():
        if not isinstance(step, model.RunStep):
            continue
        if step.worktree == "shared":  # a turn in another step's run: no new run
            runs_view.append({"step": sid, "worktree": "shared", "from": step.from_})
            continue
        provider = step.provider
        if step.agent_id:
            async with svc.engine.connect() as conn:
                try:
                    provider = (
                        provider or (await projects.get_agent(conn, step.agent_id))["provider"]
                    )
                except NotFound:
                    problems.append(
                        {
                            "loc": ["definition", "steps", sid, "agent_id"],
                            "msg": f"no agent profile {step.agent_id}",
                        }
                    )
        if provider and provider not in registry.names():
            problems.append(
                {
                    "loc": ["definition", "steps", sid, "provider"],
                    "msg": f"unknown provider {provider!r}; one of {registry.names()}",
                }
            )
        each = await _cost_per_run(svc, provider, step.agent_id)
        times = _multiplier(step, graph)
        if each is None:
            unknown.append(sid)
        else:
            total += each * times
        runs_view.append(
            {
                "step": sid,
                "provider": provider,
                "agent_id": step.agent_id,
                "worktree": step.worktree,
                "from": step.from_,
                "runs_at_most": times,
                "estimated_usd_each": each,
            }
        )
    target = None
    if body.get("project_id") or body.get("repo_path"):
        try:
            target = await executions.run_target(svc, body)
        except (ValidationFailed, NotFound) as exc:
            problems.append({"loc": ["body", "repo_path"], "msg": exc.detail})
    return {
        "valid": not problems,
        "problems": problems,
        "graph": graph.view(),
        "run_steps": runs_view,
        "target": target,
        "estimate": {
            "usd": round(total, 6),
            "steps_without_history": unknown,
            "budget_usd": defn.budget_usd,
        },
    }
