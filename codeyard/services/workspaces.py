"""Workspaces (issue 22, CodePiper's ``/workspaces``): a named scope for runs and settings.

A workspace groups projects and carries defaults — agent profile or provider and model, env
sets, policy sets, budget — for the runs started in it. A run created with ``workspace_id``
(``services.runs.create``) is recorded in the workspace, runs in one of its projects (the only
one when it has a single project and the run names none), and takes each default it leaves
out: env sets and policy sets are added to the run's own, the others fill what is unset. Runs
are listed by workspace with ``GET /api/runs?workspace_id=``.

Each workspace has an owner (its creator): only the owner or an admin may see, change, delete
or start runs in it, and everything it names is checked against the caller when it is saved
and again when a run uses it.
"""

from __future__ import annotations

from typing import Any

from codeyard.agents import registry
from codeyard.auth.principal import Principal
from codeyard.domain.errors import Conflict, Forbidden, NotFound, ValidationFailed
from codeyard.domain.events import utc_now
from codeyard.domain.ids import new_id
from codeyard.services import env_sets as env_set_service
from codeyard.services import ownership
from codeyard.services.context import Services
from codeyard.store import policies, projects
from codeyard.store import workspaces as store
from codeyard.store.writer import Tx

__all__ = [
    "create",
    "delete",
    "find",
    "get",
    "kept",
    "list_page",
    "public",
    "replace",
    "scope_run",
]


def public(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row.get("description"),
        "project_ids": list(row.get("project_ids") or []),
        "defaults": dict(row.get("defaults") or {}),
        "owner_id": row.get("owner_id"),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def _require_owner(principal: Principal, row: dict[str, Any]) -> None:
    # ``owns``: None is the admin token's, so an agent acting for a run the admin token
    # started (its run token has no admin scope) may keep working in the admin's workspace.
    if principal.is_admin or principal.owns(row.get("owner_id")):
        return
    raise Forbidden(
        f"Workspace '{row['id']}' belongs to another user: only its owner or an admin may see, "
        "change, delete or run in it. Create your own with POST /api/workspaces.",
    )


def _bad(field: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, errors=[{"loc": ["body", *field.split(".")], "msg": message}])


async def _check(svc: Services, principal: Principal, body: dict[str, Any]) -> list[str]:
    """422/403 for anything the workspace names that does not exist or is not the caller's;
    the project ids (a slug given becomes the project's id)."""
    project_ids: list[str] = []
    defaults = body.get("defaults") or {}
    async with svc.engine.connect() as conn:
        for ref in body.get("project_ids") or []:
            try:
                project = await projects.get_project(conn, ref)
            except NotFound as exc:
                raise _bad(
                    "project_ids", f"No project '{ref}': list them with GET /api/projects."
                ) from exc
            ownership.require_project_manager(principal, project, "add it to a workspace")
            if project["id"] not in project_ids:
                project_ids.append(project["id"])
        known_sets = {
            s["id"]
            for s in await policies.sets_by_ids(conn, list(defaults.get("policy_set_ids") or []))
        }
        agent_id = defaults.get("agent_id")
        if agent_id is not None:
            try:
                await projects.get_agent(conn, agent_id)
            except NotFound as exc:
                raise _bad(
                    "defaults.agent_id",
                    f"No agent profile '{agent_id}': list them with GET /api/agents.",
                ) from exc
    if missing := [i for i in defaults.get("policy_set_ids") or [] if i not in known_sets]:
        raise _bad(
            "defaults.policy_set_ids",
            f"Unknown policy sets: {', '.join(missing)}. List them with GET /api/policy-sets.",
        )
    provider = defaults.get("provider")
    if provider is not None and provider not in registry.names():
        raise _bad(
            "defaults.provider", f"No provider '{provider}': one of {', '.join(registry.names())}."
        )
    if agent_id is not None and provider is not None:
        raise _bad("defaults", "Give a default agent_id or a default provider, not both.")
    await env_set_service.check_ids(
        svc, list(defaults.get("env_set_ids") or []), principal, "defaults.env_set_ids"
    )
    return project_ids


async def _name_free(tx: Tx, name: str, own_id: str | None) -> None:
    other = await store.find_by_name(tx.conn, name)
    if other is not None and other["id"] != own_id:
        raise Conflict(
            f"A workspace named '{name}' already exists ({other['id']}); pick another name or "
            f"change that one with PUT /api/workspaces/{other['id']}.",
            workspace_id=other["id"],
        )


async def create(svc: Services, principal: Principal, body: dict[str, Any]) -> dict[str, Any]:
    project_ids = await _check(svc, principal, body)
    now = utc_now()
    values = {
        "id": new_id("ws"),
        "name": body["name"],
        "description": body.get("description"),
        "project_ids": project_ids,
        "defaults": dict(body.get("defaults") or {}),
        "owner_id": ownership.owner_of_new(principal),
        "created_at": now,
        "updated_at": now,
    }

    async def job(tx: Tx) -> None:
        await _name_free(tx, values["name"], None)
        await store.insert(tx, values)

    await svc.writer.run(job)
    return public(values)


async def _row(svc: Services, principal: Principal, workspace_id: str) -> dict[str, Any]:
    async with svc.engine.connect() as conn:
        row = await store.get(conn, workspace_id)
    _require_owner(principal, row)
    return row


async def get(svc: Services, principal: Principal, workspace_id: str) -> dict[str, Any]:
    return public(await _row(svc, principal, workspace_id))


async def find(svc: Services, ref: str) -> dict[str, Any]:
    """The workspace with this id, else this name (MCP tools name workspaces as people do);
    404 naming where to look. Whether the caller may use it is ``scope_run``'s check."""
    async with svc.engine.connect() as conn:
        try:
            return await store.get(conn, ref)
        except NotFound:
            row = await store.find_by_name(conn, ref)
    if row is None:
        raise NotFound(
            f"No workspace with the id or name '{ref}': list them with GET /api/workspaces."
        )
    return row


async def kept(svc: Services, workspace_id: str | None) -> str | None:
    """The workspace a follow-up, retry or sub-run of a run in ``workspace_id`` starts in: the
    same one, so its project, defaults and listing hold for the whole line of work; none when
    it was deleted since (its runs keep the id as history only)."""
    if workspace_id is None:
        return None
    async with svc.engine.connect() as conn:
        try:
            await store.get(conn, workspace_id)
        except NotFound:
            return None
    return workspace_id


async def list_page(
    svc: Services, principal: Principal, limit: int, cursor: str | None
) -> dict[str, Any]:
    """The caller's workspaces (every one for an admin), newest first."""
    only = None if principal.is_admin else (principal.user_id or "")
    async with svc.engine.connect() as conn:
        rows, next_cursor = await store.list_page(conn, limit, cursor, only)
    return {"data": [public(r) for r in rows], "next_cursor": next_cursor}


async def replace(
    svc: Services, principal: Principal, workspace_id: str, body: dict[str, Any]
) -> dict[str, Any]:
    """Replace name, description, projects and defaults (owner or admin)."""
    row = await _row(svc, principal, workspace_id)
    project_ids = await _check(svc, principal, body)
    values = {
        "name": body["name"],
        "description": body.get("description"),
        "project_ids": project_ids,
        "defaults": dict(body.get("defaults") or {}),
        "updated_at": utc_now(),
    }

    async def job(tx: Tx) -> None:
        await _name_free(tx, values["name"], workspace_id)
        await store.update_workspace(tx, workspace_id, values)

    await svc.writer.run(job)
    return public({**row, **values})


async def delete(svc: Services, principal: Principal, workspace_id: str) -> None:
    """Delete the workspace; its runs keep its id as history (owner or admin)."""
    await _row(svc, principal, workspace_id)

    async def job(tx: Tx) -> None:
        await store.remove(tx, workspace_id)

    await svc.writer.run(job)


async def scope_run(svc: Services, principal: Principal, body: dict[str, Any]) -> dict[str, Any]:
    """The body of a run created in ``body["workspace_id"]``, with the workspace's project and
    defaults for what it leaves out (403 for another user's workspace, 422 for a project
    outside it)."""
    workspace_id = str(body["workspace_id"])
    try:
        row = await _row(svc, principal, workspace_id)
    except NotFound as exc:
        raise _bad(
            "workspace_id", f"No workspace '{workspace_id}': list them with GET /api/workspaces."
        ) from exc
    scoped = dict(body)
    members: list[str] = list(row["project_ids"] or [])
    if members:
        if scoped.get("repo_path"):
            raise _bad(
                "repo_path",
                f"Workspace '{row['name']}' runs in its own projects: give project_id (one of "
                f"{', '.join(members)}) instead of repo_path, or add the project to the workspace.",
            )
        ref = scoped.get("project_id")
        if ref is None and len(members) == 1:
            scoped["project_id"] = members[0]
        elif ref is None:
            raise _bad(
                "project_id",
                f"Workspace '{row['name']}' has several projects: name one with project_id "
                f"({', '.join(members)}).",
            )
        else:
            async with svc.engine.connect() as conn:
                project = await projects.get_project(conn, str(ref))
            if project["id"] not in members:
                raise _bad(
                    "project_id",
                    f"Project '{ref}' is not in workspace '{row['name']}' (its projects: "
                    f"{', '.join(members)}); add it with PUT /api/workspaces/{workspace_id}.",
                )
    defaults = row["defaults"] or {}
    if not scoped.get("agent_id") and not scoped.get("provider"):
        if defaults.get("agent_id"):
            scoped["agent_id"] = defaults["agent_id"]
        elif defaults.get("provider"):
            scoped["provider"] = defaults["provider"]
            if scoped.get("model") is None:
                scoped["model"] = defaults.get("model")
    if scoped.get("budget_usd") is None and defaults.get("budget_usd") is not None:
        scoped["budget_usd"] = defaults["budget_usd"]
    for key in ("env_set_ids", "policy_set_ids"):
        merged = list(defaults.get(key) or [])
        merged += [i for i in scoped.get(key) or [] if i not in merged]
        scoped[key] = merged
    scoped["workspace_id"] = row["id"]
    return scoped
