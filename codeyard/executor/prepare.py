"""Preparing a run's workspace: one worktree per repository on the run's branch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard.domain.ids import slugify
from codeyard.store import projects
from codeyard.workspace.worktrees import branch_name, create_worktree, remove_worktree, worktree_dir


async def prepare_worktrees(
    engine: AsyncEngine, run: dict[str, Any], worktree_root: Path
) -> tuple[str, dict[str, str]]:
    """Create the run's worktrees; returns (branch, {repo_id: path}). All or nothing."""
    async with engine.connect() as conn:
        project = await projects.get_project(conn, run["project_id"])
        repos = {r["id"]: r for r in await projects.repos_of(conn, run["project_id"])}
    branch = branch_name(run["number"], run["title"])
    made: dict[str, str] = {}
    try:
        for repo_id in run["repo_ids"]:
            repo = repos[repo_id]
            dest = worktree_dir(
                worktree_root, project["slug"], run["number"], slugify(run["title"]), repo["name"]
            )
            await create_worktree(Path(repo["path"]), dest, branch, run["base_commits"][repo_id])
            made[repo_id] = str(dest)
    except BaseException:
        for repo_id, path in made.items():
            await remove_worktree(Path(repos[repo_id]["path"]), Path(path), branch)
        raise
    return branch, made


async def remove_run_worktrees(engine: AsyncEngine, run: dict[str, Any]) -> None:
    """Remove every worktree and the branch of a run (idempotent)."""
    async with engine.connect() as conn:
        repos = {r["id"]: r for r in await projects.repos_of(conn, run["project_id"])}
    for repo_id, path in (run["worktrees"] or {}).items():
        repo = repos.get(repo_id)
        if repo is not None:
            await remove_worktree(Path(repo["path"]), Path(path), run["branch"])
        _remove_empty_parents(Path(path), levels=2)


def _remove_empty_parents(path: Path, levels: int) -> None:
    """Drop the run's and the project's directories once nothing is left in them."""
    for parent in list(path.parents)[:levels]:
        try:
            parent.rmdir()
        except OSError:
            return
