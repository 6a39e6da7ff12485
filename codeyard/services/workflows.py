"""Workflow use cases: definitions (versioned, also loaded from a repository), executions
(snapshotted at start, resumed only by id), approvals of workflow steps, the dry run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import select

from codeyard.agents import registry
from codeyard.auth.principal import Principal
from codeyard.domain.errors import Conflict, Forbidden, NotFound, ValidationFailed
from codeyard.domain.events import utc_now
from codeyard.domain.ids import new_id
from codeyard.services import projects as project_service
from codeyard.services.context import Services
from codeyard.store import projects, schema
from codeyard.store.writer import Tx
from codeyard.workflows import graph as graphs
from codeyard.workflows import model, store
from codeyard.workflows.engine import WorkflowEngine
from codeyard.workflows.state import fold, step_view

REPO_DIR = Path(".codeyard") / "workflows"
#: What a run costs when history has no run of that provider (the dry run says so).
NO_HISTORY = None


def _parse(body: dict[str, Any]) -> tuple[model.WorkflowDefinition, str]:
    """(definition, source text) from ``source`` (YAML/JSON text) or ``definition`` (object)."""
    if body.get("source"):
        data = model.parse_text(body["source"])
        source = body["source"]
    elif isinstance(body.get("definition"), dict):
        data = body["definition"]
        source = None
    else:
        raise ValidationFailed(
            "Send the workflow as 'source' (YAML or JSON text) or 'definition' (an object).",
            errors=[{"loc": ["body", "source"], "msg": "source or definition required"}],
        )
    defn = model.load(data)
    graphs.resolve(defn)
    if source is None:
        source = model.to_yaml(model.dump(defn))
    return defn, source


def public(row: dict[str, Any]) -> dict[str, Any]:
    return {
        k: row[k]
        for k in (
            "id",
            "name",
            "description",
            "version",
            "definition",
            "source",
            "origin",
            "owner_id",
            "created_at",
            "updated_at",
        )
    }


def _may_change(principal: Principal, row: dict[str, Any]) -> None:
    if principal.is_admin or (row["owner_id"] is not None and row["owner_id"] == principal.user_id):
        return
    raise Forbidden(
        f"Workflow '{row['name']}' belongs to another user: only its owner or an admin may "
        "change it. Copy it (POST /api/workflows with its source) to make your own."
    )


async def create(
    svc: Services, body: dict[str, Any], principal: Principal, origin: str | None = None
) -> dict[str, Any]:
    defn, source = _parse(body)
    now = utc_now()
    values = {
        "id": new_id("wf"),
        "name": defn.name,
        "description": defn.description,
        "version": 1,
        "definition": model.dump(defn),
        "source": source,
        "origin": origin,
        "owner_id": principal.user_id,
        "created_at": now,
        "updated_at": now,
    }

    async def job(tx: Tx) -> None:
        if await store.find_by_name(tx.conn, defn.name) is not None:
            raise Conflict(
                f"A workflow named '{defn.name}' exists; change it with PUT /api/workflows/{{id}} "
                "or give this one another name."
            )
        await store.insert_workflow(tx, values)

    await svc.writer.run(job)
    return public(values)


async def get(svc: Services, workflow_id: str) -> dict[str, Any]:
    async with svc.engine.connect() as conn:
        row = await store.get_workflow(conn, workflow_id)
        row["versions"] = await store.versions(conn, workflow_id)
    return {**public(row), "versions": row["versions"]}


async def list_all(svc: Services) -> list[dict[str, Any]]:
    async with svc.engine.connect() as conn:
        return [public(r) for r in await store.list_workflows(conn)]


async def update(
    svc: Services, workflow_id: str, body: dict[str, Any], principal: Principal
) -> dict[str, Any]:
    """A new version; executions already started keep the snapshot they started with."""
    defn, source = _parse(body)

    async def job(tx: Tx) -> dict[str, Any]:
        row = await store.get_workflow(tx.conn, workflow_id)
        _may_change(principal, row)
        other = await store.find_by_name(tx.conn, defn.name)
        if other is not None and other["id"] != workflow_id:
            raise Conflict(f"Another workflow is named '{defn.name}'; pick another name.")
        if model.dump(defn) == row["definition"] and source == row["source"]:
            return row
        values = {
            "name": defn.name,
            "description": defn.description,
            "version": row["version"] + 1,
            "definition": model.dump(defn),
            "source": source,
            "updated_at": utc_now(),
        }
        await store.update_workflow(tx, workflow_id, values)
        return {**row, **values}

    return public(await svc.writer.run(job))


async def delete(svc: Services, workflow_id: str, principal: Principal) -> None:
    async def job(tx: Tx) -> None:
        row = await store.get_workflow(tx.conn, workflow_id)
        _may_change(principal, row)
        if await store.count_active(tx.conn, workflow_id):
            raise Conflict(
                f"Workflow '{row['name']}' has executions in progress: cancel them first "
                f"(GET /api/workflows/{workflow_id}/executions?status=running)."
            )
        await store.delete_workflow(tx, workflow_id)

    await svc.writer.run(job)


async def load_from_repo(
    svc: Services, body: dict[str, Any], principal: Principal
) -> list[dict[str, Any]]:
    """Create or update (a new version) each ``.codeyard/workflows/*.yaml`` of a repository."""
    paths: list[Path] = []
    if body.get("project_id"):
        project = await project_service.get_project(svc, body["project_id"])
        paths = [Path(r["path"]) for r in project["repos"]]
    elif body.get("repo_path"):
        paths = [await project_service.local_work_tree(body["repo_path"])]
    else:
        raise ValidationFailed(
            "Say which repository: 'repo_path' or 'project_id'.",
            errors=[{"loc": ["body", "repo_path"], "msg": "repo_path or project_id required"}],
        )
    out = []
    for root in paths:
        folder = root / REPO_DIR
        files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml"), *folder.glob("*.json")])
        for file in files:
            source = file.read_text(encoding="utf-8")
            origin = f"{root}:{file.relative_to(root)}"
            defn = model.load(model.parse_text(source))
            async with svc.engine.connect() as conn:
                existing = await store.find_by_name(conn, defn.name)
            if existing is None:
                out.append(await create(svc, {"source": source}, principal, origin=origin))
            else:
                out.append(await update(svc, existing["id"], {"source": source}, principal))
    return out


# -- executions ---------------------------------------------------------------------------


async def _target(svc: Services, body: dict[str, Any]) -> dict[str, Any]:
    if body.get("project_id"):
        project = await project_service.get_project(svc, body["project_id"])
        target: dict[str, Any] = {"project_id": project["id"]}
        if body.get("repo_ids"):
            target["repo_ids"] = list(body["repo_ids"])
        return target
    if body.get("repo_path"):
        return {"repo_path": str(await project_service.local_work_tree(body["repo_path"]))}
    raise ValidationFailed(
        "Say where the run steps work: 'repo_path' (a local git work tree) or 'project_id'.",
        errors=[{"loc": ["body", "repo_path"], "msg": "repo_path or project_id required"}],
    )


def check_scopes(graph: graphs.Graph, principal: Principal) -> None:
    """Steps act with the starter's scopes: landing needs what ``POST …/resolve`` needs, so a
    token that may not merge cannot start a workflow that merges (403 before anything runs)."""
    needed: set[str] = set()
    for step in graph.steps.values():
        action = (
            step.action
            if isinstance(step, model.LandStep)
            else step.land
            if isinstance(step, model.CompareStep)
            else None
        )
        if action is not None:
            needed.add("git:merge")
            if action == "create_pr":
                needed.add("git:push")
    missing = sorted(needed - principal.scopes)
    if missing:
        raise Forbidden(
            f"This workflow lands runs, which needs the {', '.join(missing)} scope(s); use a "
            "token that has them, or remove its land steps.",
            required_scope=missing[0],
        )


def execution_public(row: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "id",
        "workflow_id",
        "workflow_version",
        "status",
        "status_reason",
        "definition",
        "definition_hash",
        "inputs",
        "target",
        "budget_usd",
        "spent_usd",
        "outputs",
        "created_by",
        "created_at",
        "updated_at",
        "finished_at",
    )
    return {k: row[k] for k in keys}


async def execute(
    svc: Services,
    eng: WorkflowEngine,
    workflow_id: str,
    body: dict[str, Any],
    principal: Principal,
) -> dict[str, Any]:
    """Snapshot the definition and inputs, write the execution and its first event, start it."""
    async with svc.engine.connect() as conn:
        row = await store.get_workflow(conn, workflow_id)
    defn = model.load(row["definition"])
    check_scopes(graphs.resolve(defn), principal)
    inputs = graphs.check_inputs(defn, dict(body.get("variables") or {}))
    target = await _target(svc, body)
    budget = body.get("budget_usd") or defn.budget_usd
    definition = model.dump(defn)
    digest = model.digest(definition, inputs)
    now = utc_now()
    values = {
        "id": new_id("wfx"),
        "workflow_id": workflow_id,
        "workflow_version": row["version"],
        "status": "running",
        "status_reason": None,
        "definition": definition,
        "definition_hash": digest,
        "inputs": inputs,
        "target": target,
        "budget_usd": budget,
        "spent_usd": 0.0,
        "outputs": {},
        "created_by": principal.user_id,
        "principal": {
            "kind": principal.kind,
            "name": principal.name,
            "scopes": sorted(principal.scopes),
            "user_id": principal.user_id,
            "role": principal.role,
        },
        "last_seq": 0,
        "created_at": now,
        "updated_at": now,
        "finished_at": None,
    }

    async def job(tx: Tx) -> None:
        await store.insert_execution(tx, values)
        await store.emit(
            tx,
            values["id"],
            "workflow.execution.started",
            {"definition_hash": digest, "workflow_version": row["version"], "inputs": inputs},
        )

    await svc.writer.run(job)
    eng.launch(values)
    return execution_public(values)


async def get_execution(
    svc: Services, execution_id: str, workflow_id: str | None = None
) -> dict[str, Any]:
    async with svc.engine.connect() as conn:
        row = await store.get_execution(conn, execution_id)
        events = await store.read_events(conn, execution_id)
    if workflow_id is not None and row["workflow_id"] != workflow_id:
        raise NotFound(f"Execution {execution_id} is not an execution of workflow {workflow_id}.")
    folded = fold((e["type"], e["data"]) for e in events)
    return {
        **execution_public(row),
        "steps": step_view(folded),
        "pending_approvals": [{"key": k, "attempt": a} for k, a in folded.pending_approvals()],
        "graph": graphs.resolve(model.load(row["definition"])).view(),
    }


async def list_executions(
    svc: Services, workflow_id: str, status: list[str] | None, limit: int
) -> list[dict[str, Any]]:
    async with svc.engine.connect() as conn:
        await store.get_workflow(conn, workflow_id)
        rows = await store.list_executions(conn, workflow_id, status, limit)
    return [execution_public(r) for r in rows]


async def events(svc: Services, execution_id: str, after: int, limit: int) -> list[dict[str, Any]]:
    async with svc.engine.connect() as conn:
        await store.get_execution(conn, execution_id)
        return await store.read_events(conn, execution_id, after, limit)


def _may_control(principal: Principal, row: dict[str, Any]) -> None:
    if principal.is_admin or row["created_by"] == principal.user_id:
        return
    raise Forbidden("Only the person who started this execution or an admin may control it.")


async def cancel(
    svc: Services, eng: WorkflowEngine, execution_id: str, principal: Principal
) -> dict[str, Any]:
    async with svc.engine.connect() as conn:
        row = await store.get_execution(conn, execution_id)
    _may_control(principal, row)
    if row["status"] in store.FINISHED:
        raise Conflict(
            f"Execution {execution_id} already ended ({row['status']}).",
            current_status=row["status"],
        )
    await eng.cancel(execution_id, f"cancelled by {principal.name}")
    return await get_execution(svc, execution_id)


async def resume(
    svc: Services, eng: WorkflowEngine, execution_id: str, principal: Principal
) -> dict[str, Any]:
    """Continue an interrupted execution from its log, with the snapshot it started with."""
    async with svc.engine.connect() as conn:
        row = await store.get_execution(conn, execution_id)
    _may_control(principal, row)
    if row["status"] != "interrupted" or eng.is_live(execution_id):
        raise Conflict(
            f"Only an interrupted execution can be resumed; {execution_id} is {row['status']}. "
            "Start a new one with POST /api/workflows/{id}/execute.",
            current_status=row["status"],
        )

    async def job(tx: Tx) -> None:
        await store.set_status(tx, execution_id, "running", "resumed")
        await store.emit(
            tx,
            execution_id,
            "workflow.execution.resumed",
            {"definition_hash": row["definition_hash"], "by": principal.name},
        )

    await svc.writer.run(job)
    eng.launch({**row, "status": "running"})
    return await get_execution(svc, execution_id)


async def decide(
    svc: Services,
    eng: WorkflowEngine,
    execution_id: str,
    key: str,
    body: dict[str, Any],
    principal: Principal,
) -> dict[str, Any]:
    """Approve or reject a waiting approval step; a rejection carries the reason back."""
    approved = body["decision"] == "approve"

    async def job(tx: Tx) -> None:
        row = await store.get_execution(tx.conn, execution_id)
        folded = fold(
            (e["type"], e["data"]) for e in await store.read_events(tx.conn, execution_id)
        )
        waiting = [a for k, a in folded.pending_approvals() if k == key]
        if not waiting:
            keys = ", ".join(k for k, _ in folded.pending_approvals()) or "none"
            raise Conflict(
                f"Step '{key}' of execution {execution_id} is not waiting for a decision "
                f"(waiting: {keys}).",
                current_status=row["status"],
            )
        await store.emit(
            tx,
            execution_id,
            "workflow.approval.decided",
            {
                "key": key,
                "attempt": waiting[0],
                "approved": approved,
                "reason": body.get("reason"),
                "by": principal.name,
            },
        )

    await svc.writer.run(job)
    eng.wake(execution_id)
    return await get_execution(svc, execution_id)


# -- the dry run --------------------------------------------------------------------------


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
    defn, _ = _parse(body)
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
            target = await _target(svc, body)
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
