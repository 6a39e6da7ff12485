"""A project's repositories brought up to date from their remotes (the Laravel seed's
``POST /api/projects/{id}/pull``), and the checkpoints of all its runs in one list.

Pulling never rewrites anything: ``git fetch`` then a fast-forward of the default branch only
(``merge --ff-only`` when it is checked out, so the user's work tree moves with it and a dirty
or diverged checkout refuses with git's own message; ``fetch origin b:b`` when it is not).
Repositories without a remote are reported as skipped.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import select

from codeyard.domain.errors import BadRequest, Conflict
from codeyard.services import projects as project_service
from codeyard.services.context import Services
from codeyard.store import schema
from codeyard.workspace import clone_urls, git
from codeyard.workspace.git import GitError

C = schema.checkpoints
R = schema.runs


async def _remote(path: Path) -> str | None:
    result = await git.git("remote", cwd=path, check=False)
    names = result.stdout.split()
    return "origin" if "origin" in names else (names[0] if names else None)


async def _pull_one(repo: dict[str, Any]) -> dict[str, Any]:
    path = Path(repo["path"])
    branch = repo["default_branch"] or await git.default_branch(path)
    out: dict[str, Any] = {"repo_id": repo["id"], "name": repo["name"], "branch": branch}
    remote = await _remote(path)
    if remote is None:
        return {**out, "status": "skipped", "reason": "no remote configured"}
    before = await git.resolve_commit(path, branch)
    try:
        await git.git("fetch", "--quiet", "--prune", remote, cwd=path, timeout=120)
        if await git.current_branch(path) == branch:
            await git.git("merge", "--ff-only", "--quiet", f"{remote}/{branch}", cwd=path)
        else:
            await git.git("fetch", "--quiet", remote, f"{branch}:{branch}", cwd=path, timeout=120)
    except GitError as exc:
        raise Conflict(
            f"Could not fast-forward '{branch}' of '{repo['name']}' from {remote}: {exc.detail} "
            "Nothing was rewritten; resolve it in the repository, then pull again.",
            repo_id=repo["id"],
        ) from None
    after = await git.resolve_commit(path, branch)
    status = "updated" if after != before else "up_to_date"
    return {**out, "status": status, "remote": remote, "before": before, "after": after}


async def pull(svc: Services, project_ref: str) -> dict[str, Any]:
    project = await project_service.get_project(svc, project_ref)
    results = [await _pull_one(repo) for repo in project["repos"]]
    return {"project_id": project["id"], "repos": results}


async def checkpoints(svc: Services, project_ref: str, limit: int) -> dict[str, Any]:
    """Checkpoints of every run of the project, newest first."""
    project = await project_service.get_project(svc, project_ref)
    stmt = (
        select(C, R.c.number.label("run_number"), R.c.title.label("run_title"))
        .join(R, R.c.id == C.c.run_id)
        .where(R.c.project_id == project["id"])
        .order_by(C.c.created_at.desc(), C.c.number.desc())
        .limit(limit)
    )
    async with svc.engine.connect() as conn:
        rows = [dict(r._mapping) for r in (await conn.execute(stmt)).all()]
    return {"project_id": project["id"], "data": rows}


async def _reclone_one(svc: Services, repo: dict[str, Any]) -> dict[str, Any]:
    path = Path(repo["path"])
    out: dict[str, Any] = {"repo_id": repo["id"], "name": repo["name"], "path": str(path)}
    if not repo["url"]:
        return {**out, "status": "skipped", "reason": "a local repository: nothing to clone from"}
    if await git.is_work_tree(path):
        return {**out, "status": "present", "reason": None}
    url = clone_urls.parse_clone_url(repo["url"])
    shutil.rmtree(path, ignore_errors=True)  # what is left of a broken clone
    try:
        await git.clone(
            url.clone, path, timeout=svc.settings.clone_timeout_seconds, origin=url.stored
        )
    except GitError as exc:
        shutil.rmtree(path, ignore_errors=True)
        why = exc.stderr.strip()[-1000:] or f"git exited with {exc.returncode}"
        raise BadRequest(url.redact(f"Could not clone '{url.stored}' again: {why}")) from None
    return {**out, "status": "cloned", "reason": None}


async def reclone(svc: Services, project_ref: str) -> dict[str, Any]:
    """Clone again the repositories that came from a URL and whose clone is gone or broken
    (the Laravel seed's ``POST /projects/{p}/clone``); intact clones are left alone."""
    project = await project_service.get_project(svc, project_ref)
    return {
        "project_id": project["id"],
        "repos": [await _reclone_one(svc, r) for r in project["repos"]],
    }
