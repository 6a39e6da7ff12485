"""Workflow definitions as a use case: versioned, owned, also loaded from a repository.

Executions (snapshotted at start, resumed only by id, approvals of their steps) are
``workflow_executions``; the dry run is ``workflow_dry_run``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from codeyard.auth.principal import Principal
from codeyard.domain.errors import Conflict, Forbidden, ValidationFailed
from codeyard.domain.events import utc_now
from codeyard.domain.ids import new_id
from codeyard.services import projects as project_service
from codeyard.services.context import Services
from codeyard.store.writer import Tx
from codeyard.workflows import graph as graphs
from codeyard.workflows import model, store

REPO_DIR = Path(".codeyard") / "workflows"


def parse(body: dict[str, Any]) -> tuple[model.WorkflowDefinition, str]:
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
    defn, source = parse(body)
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
    defn, source = parse(body)

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
