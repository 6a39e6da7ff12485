"""Taking a run's workspace down: on delete, discard and retention.

Its own module because its callers are not preparation's: the services (delete, a project's
repository removal, retention) and the worktree operations a worker host runs
(``worktree_writes``), none of which prepare. Each ``cleanup_script`` runs first and a failing
one never blocks the removal; worktrees an interrupted prepare recorded but did not finish are
removed too, and retention keeps a branch that is not merged (no unlanded work is lost).
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard.run_workspace.steps import (
    DEFAULT_SCRIPT_TIMEOUT,
    Reporter,
    remove_empty_parents,
    remove_one_worktree,
    retrying,
    run_cleanup,
)
from codeyard.sandbox import Sandbox
from codeyard.store import projects
from codeyard.store.writer import Writer
from codeyard.workspace.branches import is_ancestor
from codeyard.workspace.git import default_branch, git, resolve_commit
from codeyard.workspace.repo_lock import repo_lock

__all__ = ["remove_run_worktrees"]


async def _is_merged(repo: dict[str, Any], branch: str) -> bool:
    """True when ``branch`` is gone or contained in the repository's default branch."""
    path = Path(repo["path"])
    if not await asyncio.to_thread(path.is_dir):
        return False
    head = await resolve_commit(path, f"refs/heads/{branch}")
    if head is None:
        return True
    target_name = repo["default_branch"] or await default_branch(path)
    target = await resolve_commit(path, f"refs/heads/{target_name}")
    return target is not None and await is_ancestor(path, head, target)


async def remove_run_worktrees(
    engine: AsyncEngine,
    run: dict[str, Any],
    writer: Writer | None = None,
    script_timeout: float = DEFAULT_SCRIPT_TIMEOUT,
    *,
    keep_unmerged_branch: bool = False,
    sandbox: Sandbox | None = None,
) -> list[dict[str, Any]]:
    """Remove every worktree of a run (cleanup scripts first) and its branch; idempotent.

    With ``keep_unmerged_branch`` the branch is deleted only where it is merged into the
    repository's default branch (retention keeps unfinished work). Cleanup output is recorded
    on the run when a ``writer`` is given and the run still exists. Returns one record per
    worktree: ``{repo_id, path, branch, branch_deleted}``. A branch whose worktree retention
    already removed is deleted too, unless ``keep_unmerged_branch``.
    """
    async with engine.connect() as conn:
        repos = {r["id"]: r for r in await projects.repos_of(conn, run["project_id"])}
    report = Reporter(writer, run["id"], sandbox)
    branch: str | None = run["branch"]
    removed: list[dict[str, Any]] = []
    intent = run.get("workspace_intent") or {}
    branch = branch or intent.get("branch")
    # Worktrees a prepare meant to make but the server died before it finished: removed too.
    worktrees = dict(run["worktrees"] or {})
    for repo_id, planned in (intent.get("repos") or {}).items():
        worktrees.setdefault(repo_id, planned["path"])
    for repo_id, path in worktrees.items():
        dest, repo = Path(path), repos.get(repo_id)
        deleted = False
        if repo is None:  # the repository was taken out of the project: drop the files only
            await asyncio.to_thread(_delete_orphan, dest)
        else:
            if repo["cleanup_script"] and await asyncio.to_thread(dest.is_dir):
                await run_cleanup(report, run, repo, dest, script_timeout)
            deleted = branch is not None and (
                not keep_unmerged_branch or await _is_merged(repo, branch)
            )
            await remove_one_worktree(Path(repo["path"]), dest, branch, deleted)
        remove_empty_parents(dest, levels=2)
        removed.append(
            {"repo_id": repo_id, "path": path, "branch": branch, "branch_deleted": deleted}
        )
    if branch is not None and not keep_unmerged_branch:  # branches kept when retention ran
        for repo_id in run.get("repo_ids") or []:
            if repo_id not in worktrees and repo_id in repos:
                await _delete_branch(Path(repos[repo_id]["path"]), branch)
    return removed


async def _delete_branch(repo: Path, branch: str) -> None:
    """Delete ``branch`` of a repository that has no worktree of the run any more."""
    if not await asyncio.to_thread(repo.is_dir):
        return
    async with repo_lock(repo):
        if await resolve_commit(repo, f"refs/heads/{branch}") is not None:
            await retrying(lambda: git("branch", "-D", "--", branch, cwd=repo))


def _delete_orphan(dest: Path) -> None:
    """Delete a worktree directory whose repository is unknown (only if it is a worktree)."""
    if (dest / ".git").is_file() and not dest.is_symlink():
        shutil.rmtree(dest)
