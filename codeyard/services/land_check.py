"""What landing a run would do, asked before landing it: conflicts, nothing to land, and the
user's own checkouts of the target branch (issue 14).

Landing on a branch that is checked out in the user's main worktree moves that worktree's files
to the landed commit. Codeyard refuses when they have uncommitted changes, but even a clean
checkout changing under someone's editor deserves a question first: this check names those
checkouts and the question, and the web UI and ``codeyard land`` ask it. Nothing here changes a
ref, an index or a file (the worktree's state becomes a commit object only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from codeyard.domain.errors import InvalidTransition
from codeyard.run_workspace.worktree_dispatch import Here, in_worktrees
from codeyard.run_workspace.worktree_writes import SNAPSHOT, SnapshotJob
from codeyard.services import sandbox as sandbox_service
from codeyard.services.context import Services
from codeyard.store import projects, runs
from codeyard.workspace import branches, landing

_MESSAGE = "codeyard: land check"


def question(checked_out: dict[str, list[str]]) -> str | None:
    """The question to ask before landing, from ``{target branch: checkouts}``; None when no
    target is checked out anywhere (nothing of the user's moves)."""
    parts = [
        f"'{branch}' is checked out in {', '.join(paths)}"
        for branch, paths in checked_out.items()
        if paths
    ]
    if not parts:
        return None
    return (
        "; ".join(parts)
        + ". Landing moves the files there to the new commit (a checkout with uncommitted "
        "changes is refused, never overwritten). Land anyway?"
    )


async def check(svc: Services, ref: str, target_branch: str | None) -> dict[str, Any]:
    """Per repository: target branch, conflicting paths, nothing to land, and the user's
    checkouts of the target; plus ``confirm``, the question to ask first (or None)."""
    async with svc.engine.connect() as conn:
        run = await runs.get(conn, ref)
        repos = {r["id"]: r for r in await projects.repos_of(conn, run["project_id"])}
    if not run["worktrees"]:
        raise InvalidTransition(
            f"Run {run['number']} has no worktree (never started, discarded or cleaned up): "
            "there is nothing to land.",
            current_status=run["status"],
        )
    out = []
    checked_out: dict[str, list[str]] = {}
    # The worktrees' state as commits, made where they are (this server or their worker host).
    here = Here(svc.engine, svc.writer, lambda: sandbox_service.current(svc))
    job = SnapshotJob(dict(run["worktrees"]), _MESSAGE)
    snapshots = (await in_worktrees(svc.executor, run, SNAPSHOT, job, here)).made
    for repo_id, path in run["worktrees"].items():
        repo = repos[repo_id]
        repo_path = Path(repo["path"])
        target = target_branch or repo["default_branch"] or "main"
        commit = snapshots[repo_id][1]
        conflicts = await landing.check_conflicts(repo_path, target, commit)
        target_head = await branches.branch_head(repo_path, target, "target branch")
        nothing = await branches.is_ancestor(repo_path, commit, target_head)
        mine = Path(path).resolve()
        found = [str(p) for p in await branches.checkouts(repo_path, target) if p.resolve() != mine]
        checked_out.setdefault(target, []).extend(found)
        out.append(
            {
                "repo_id": repo_id,
                "repo": repo["name"],
                "target_branch": target,
                "conflicts": conflicts,
                "nothing_to_land": nothing,
                "checked_out_in": found,
            }
        )
    return {
        "repos": out,
        "conflicts": any(r["conflicts"] for r in out),
        "confirm": question(checked_out),
    }
