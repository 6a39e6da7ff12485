"""Projects and repositories: registering a local work tree or cloning a URL."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from codeyard.domain.errors import BadRequest, Conflict, ValidationFailed
from codeyard.domain.events import utc_now
from codeyard.domain.ids import new_id, slugify
from codeyard.domain.status import ACTIVE
from codeyard.executor.prepare import remove_run_worktrees
from codeyard.services.context import Services
from codeyard.store import projects, runs
from codeyard.store.writer import Tx
from codeyard.workspace import git


async def local_work_tree(path_text: str) -> Path:
    """Resolve a user-given path to its work tree's top level, or refuse."""
    path = Path(path_text).expanduser()
    if not path.is_absolute():
        raise BadRequest(f"Repository path '{path_text}' must be absolute.")
    top = await git.work_tree_top(path)
    if top is None:
        raise BadRequest(
            f"'{path_text}' is not a git work tree. Run `git init` there first, or pass the path "
            "of an existing repository."
        )
    return top


async def inspect_local_repo(path_text: str) -> tuple[Path, str]:
    """Resolve a user-given path to its work tree top level and default branch, or refuse."""
    top = await local_work_tree(path_text)
    return top, await git.default_branch(top)


async def _repo_values(svc: Services, spec: dict[str, Any], project_id: str) -> dict[str, Any]:
    """Validate one repo spec (``path`` or ``url``) into a row; clones URLs into the data dir."""
    now = utc_now()
    if spec.get("path"):
        top, branch = await inspect_local_repo(spec["path"])
        path, url = top, None
    elif spec.get("url"):
        url = spec["url"]
        repo_id_hint = new_id("repo")
        path = (
            svc.settings.repos_root
            / f"{slugify(spec.get('name') or Path(url).stem)}-{repo_id_hint[-6:]}"
        )
        try:
            await git.clone(url, path)
        except git.GitError as exc:
            shutil.rmtree(path, ignore_errors=True)
            raise BadRequest(f"Could not clone '{url}': {exc.detail}") from exc
        branch = await git.default_branch(path)
    else:
        raise ValidationFailed(
            "Each repository needs a 'path' (a local git work tree) or a 'url' to clone.",
            errors=[{"loc": ["repos"], "msg": "path or url required"}],
        )
    return {
        "id": new_id("repo"),
        "project_id": project_id,
        "name": spec.get("name") or path.name,
        "path": str(path),
        "url": url,
        "default_branch": spec.get("default_branch") or branch,
        "setup_script": None,
        "cleanup_script": None,
        "copy_files": [],
        "created_at": now,
        "updated_at": now,
    }


async def unique_slug(tx: Tx, wanted: str) -> str:
    slug, n = wanted, 1
    while await projects.find_project_by_slug(tx.conn, slug) is not None:
        n += 1
        slug = f"{wanted}-{n}"
    return slug


def project_values(name: str, slug: str) -> dict[str, Any]:
    now = utc_now()
    return {"id": new_id("prj"), "name": name, "slug": slug, "created_at": now, "updated_at": now}


async def create_project(
    svc: Services, name: str, slug: str | None, repo_specs: list[dict[str, Any]]
) -> dict[str, Any]:
    values = project_values(name, slugify(slug or name))
    repo_rows = [await _repo_values(svc, spec, values["id"]) for spec in repo_specs]

    async def job(tx: Tx) -> None:
        if slug and await projects.find_project_by_slug(tx.conn, values["slug"]):
            raise Conflict(f"A project with slug '{values['slug']}' exists; choose another slug.")
        values["slug"] = await unique_slug(tx, values["slug"])
        await projects.insert_project(tx, values)
        for row in repo_rows:
            await projects.insert_repo(tx, row)

    try:
        await svc.writer.run(job)
    except BaseException:
        for row in repo_rows:
            if row["url"]:
                shutil.rmtree(row["path"], ignore_errors=True)
        raise
    return await get_project(svc, values["id"])


async def get_project(svc: Services, ref: str) -> dict[str, Any]:
    async with svc.engine.connect() as conn:
        project = await projects.get_project(conn, ref)
        project["repos"] = await projects.repos_of(conn, project["id"])
    return project


async def add_repo(svc: Services, project_ref: str, spec: dict[str, Any]) -> dict[str, Any]:
    project = await get_project(svc, project_ref)
    row = await _repo_values(svc, spec, project["id"])
    await svc.writer.run(lambda tx: projects.insert_repo(tx, row))
    return row


async def delete_project(svc: Services, project_ref: str) -> None:
    project = await get_project(svc, project_ref)
    async with svc.engine.connect() as conn:
        active, _ = await runs.list_page(
            conn, project_id=project["id"], archived=None, status=[str(s) for s in ACTIVE], limit=1
        )
    if active:
        raise Conflict(
            f"Project '{project['slug']}' has active runs (e.g. run {active[0]['number']}); "
            "cancel them first."
        )
    async with svc.engine.connect() as conn:
        idle = await runs.all_of_project(conn, project["id"])
    for run in idle:
        await remove_run_worktrees(svc.engine, run)

    async def job(tx: Tx) -> None:
        for run in idle:
            await runs.remove(tx, run["id"])
        await projects.delete_project(tx, project["id"])

    await svc.writer.run(job)


async def get_repo(svc: Services, repo_id: str) -> dict[str, Any]:
    async with svc.engine.connect() as conn:
        return await projects.get_repo(conn, repo_id)
