"""Projects, repositories and agent profiles."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from codeyard.api.auth import Caller, require_scope
from codeyard.api.deps import Cursor, Limit, Svc, listing
from codeyard.api.project_views import AgentView, ProjectView, RepoView
from codeyard.api.schemas import (
    AgentCreate,
    AgentUpdate,
    ProjectCreate,
    ProjectUpdate,
    RepoSpec,
    RepoUpdate,
)
from codeyard.api.views import Page
from codeyard.services import agent_profiles
from codeyard.services import projects as project_service
from codeyard.store import projects

router = APIRouter(tags=["projects"])


@router.post(
    "/projects",
    dependencies=[require_scope("settings:write")],
    status_code=201,
    response_model=ProjectView,
)
async def create_project(body: ProjectCreate, svc: Svc, principal: Caller) -> dict[str, Any]:
    """Register local work trees (``path``) or clone URLs (``url``) as one project, owned by
    the caller."""
    specs = [r.data() for r in body.repos]
    return await project_service.create_project(svc, principal, body.name, body.slug, specs)


@router.get(
    "/projects", dependencies=[require_scope("settings:read")], response_model=Page[ProjectView]
)
async def list_projects(svc: Svc, limit: Limit = 50, cursor: Cursor = None) -> dict[str, Any]:
    async with svc.engine.connect() as conn:
        rows, next_cursor = await projects.list_projects(conn, limit, cursor)
        for row in rows:
            row["repos"] = await projects.repos_of(conn, row["id"])
    return listing(list(rows), next_cursor)


@router.get(
    "/projects/{project_ref}",
    dependencies=[require_scope("settings:read")],
    response_model=ProjectView,
)
async def get_project(project_ref: str, svc: Svc) -> dict[str, Any]:
    return await project_service.get_project(svc, project_ref)


@router.patch(
    "/projects/{project_ref}",
    dependencies=[require_scope("settings:write")],
    response_model=ProjectView,
)
async def update_project(
    project_ref: str, body: ProjectUpdate, svc: Svc, principal: Caller
) -> dict[str, Any]:
    """Owner, members or an admin; only the owner or an admin changes ``member_ids``."""
    return await project_service.update_project(svc, principal, project_ref, body.data())


@router.delete(
    "/projects/{project_ref}", dependencies=[require_scope("settings:write")], status_code=204
)
async def delete_project(project_ref: str, svc: Svc, principal: Caller) -> Response:
    """Delete a project and its idle runs' worktrees (409 while a run is active).

    Owner or admin only; 409 for a non-admin while the project holds other users' runs.
    """
    await project_service.delete_project(svc, principal, project_ref)
    return Response(status_code=204)


@router.post(
    "/projects/{project_ref}/repos",
    dependencies=[require_scope("settings:write")],
    status_code=201,
    response_model=RepoView,
)
async def add_repo(project_ref: str, body: RepoSpec, svc: Svc, principal: Caller) -> dict[str, Any]:
    return await project_service.add_repo(svc, principal, project_ref, body.data())


@router.delete(
    "/projects/{project_ref}/repos/{repo_id}",
    dependencies=[require_scope("settings:write")],
    status_code=204,
)
async def remove_repo(project_ref: str, repo_id: str, svc: Svc, principal: Caller) -> Response:
    await project_service.remove_repo(svc, principal, project_ref, repo_id)
    return Response(status_code=204)


@router.patch(
    "/repos/{repo_id}", dependencies=[require_scope("settings:write")], response_model=RepoView
)
async def update_repo(
    repo_id: str, body: RepoUpdate, svc: Svc, principal: Caller
) -> dict[str, Any]:
    """Change a repository; ``setup_script``, ``cleanup_script`` and ``copy_files`` run in every
    user's runs, so changing them needs ``admin`` and is recorded in the audit log."""
    return await project_service.update_repo(svc, principal, repo_id, body.data())


@router.post(
    "/agents",
    dependencies=[require_scope("settings:write")],
    status_code=201,
    response_model=AgentView,
)
async def create_agent(body: AgentCreate, svc: Svc, principal: Caller) -> dict[str, Any]:
    """An agent profile: a provider with its model, instructions, tools and options.

    ``provider_config.env`` values are write-only: stored sealed, shown masked (like env sets).
    """
    return await agent_profiles.create(svc, principal, body.model_dump())


@router.get(
    "/agents", dependencies=[require_scope("settings:read")], response_model=Page[AgentView]
)
async def list_agents(svc: Svc, limit: Limit = 50, cursor: Cursor = None) -> dict[str, Any]:
    return await agent_profiles.list_page(svc, limit, cursor)


@router.get(
    "/agents/{agent_id}", dependencies=[require_scope("settings:read")], response_model=AgentView
)
async def get_agent(agent_id: str, svc: Svc) -> dict[str, Any]:
    return await agent_profiles.get(svc, agent_id)


@router.patch(
    "/agents/{agent_id}",
    dependencies=[require_scope("settings:write")],
    response_model=AgentView,
)
async def update_agent(
    agent_id: str, body: AgentUpdate, svc: Svc, principal: Caller
) -> dict[str, Any]:
    """Change a profile; in ``provider_config.env`` a masked value keeps the stored one."""
    return await agent_profiles.update(svc, principal, agent_id, body.data())


@router.delete(
    "/agents/{agent_id}", dependencies=[require_scope("settings:write")], status_code=204
)
async def delete_agent(agent_id: str, svc: Svc) -> Response:
    async with svc.engine.connect() as conn:
        await projects.get_agent(conn, agent_id)
    await svc.writer.run(lambda tx: projects.delete_agent(tx, agent_id))
    return Response(status_code=204)
