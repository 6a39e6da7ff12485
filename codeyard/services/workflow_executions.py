"""Workflow executions as a use case: started from a snapshot of the definition and inputs,
controlled (cancel, resume, step approvals) only by their starter or an admin, read back
with their folded step states."""

from __future__ import annotations

from typing import Any

from codeyard.auth.principal import Principal
from codeyard.domain.errors import Conflict, Forbidden, NotFound, ValidationFailed
from codeyard.domain.events import utc_now
from codeyard.domain.ids import new_id
from codeyard.services import projects as project_service
from codeyard.services.context import Services
from codeyard.store.writer import Tx
from codeyard.workflows import graph as graphs
from codeyard.workflows import model, store
from codeyard.workflows.engine import WorkflowEngine
from codeyard.workflows.state import fold, step_view


async def run_target(svc: Services, body: dict[str, Any]) -> dict[str, Any]:
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
    target = await run_target(svc, body)
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
