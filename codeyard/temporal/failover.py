"""Checkpoints that outlive their host: pushed to a shared bare repository at every turn end,
restored into a new worktree on the host that takes a run over after its host was lost.

One shared bare repository holds the checkpoints of every project's repositories; refs are
namespaced by repository id and run id (``refs/codeyard-shared/<repo-id>/<run-id>/<n>``), so
repositories that are unrelated never share a ref. A checkpoint commit's parent is the run
branch's HEAD when it was taken, so restoring needs nothing else: the new worktree's branch
starts at that parent and its files are the checkpoint's tree (uncommitted changes included).
Files ignored by ``.gitignore`` are not in checkpoints and do not travel.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard.store import fencing
from codeyard.workspace.git import GitError, git
from codeyard.workspace.repo_lock import repo_lock

log = logging.getLogger(__name__)


def shared_ref(repo_id: str, run_id: str, number: int) -> str:
    return f"refs/codeyard-shared/{repo_id}/{run_id}/{number}"


async def ensure_remote(remote: Path) -> None:
    """Create the shared bare repository if it does not exist yet (idempotent)."""
    if (remote / "HEAD").exists():
        return
    remote.mkdir(parents=True, exist_ok=True)
    await git("init", "--bare", "--quiet", str(remote), cwd=remote)


async def push_checkpoint(
    remote: Path, worktree: Path, repo_id: str, run_id: str, number: int, commit: str
) -> None:
    """Push one checkpoint commit of one repository to the shared remote."""
    await git(
        "push", "--quiet", "--no-verify", str(remote),
        f"+{commit}:{shared_ref(repo_id, run_id, number)}",
        cwd=worktree,
    )  # fmt: skip


async def push_fenced(
    engine: AsyncEngine,
    remote: Path,
    worktrees: dict[str, str],
    run_id: str,
    fence: fencing.Fence | None,
    number: int,
    commits: dict[str, str],
) -> None:
    """Push a committed checkpoint's commits, unless the attempt that took it lost the run.

    The row was fenced when it committed, but the push comes after: a host that lost its run
    in between (its heartbeat timed out, another host took the run and pushes its own
    checkpoints) must not write into the run's shared refs. Raises ``StaleAttempt``, pushing
    nothing, when the run's attempt moved past ``fence`` (None: written outside an attempt,
    not fenced)."""
    for repo_id, sha in commits.items():
        path = worktrees.get(repo_id)
        if path is None:
            continue
        await fencing.verify(engine, fence)
        await push_checkpoint(remote, Path(path), repo_id, run_id, number, sha)


async def fetch_checkpoint(
    remote: Path, repo: Path, repo_id: str, run_id: str, number: int
) -> str | None:
    """Fetch a pushed checkpoint into ``repo``; its commit id, or None if it was never pushed."""
    ref = shared_ref(repo_id, run_id, number)
    local = f"refs/codeyard/{run_id}/{number}"
    try:
        await git("fetch", "--quiet", "--no-tags", str(remote), f"+{ref}:{local}", cwd=repo)
    except GitError as exc:
        log.info("checkpoint %s of run %s is not on the shared remote: %s", number, run_id, exc)
        return None
    return (await git("rev-parse", "--verify", f"{local}^{{commit}}", cwd=repo)).stdout.strip()


async def restore_worktree(
    repo: Path, dest: Path, branch: str, start: str, tree: str | None
) -> None:
    """Make ``dest`` a worktree of ``repo`` on ``branch`` at ``start``, holding ``tree``'s files.

    ``start`` is the branch's commit (the checkpoint's parent, or the run's base commit when no
    checkpoint was pushed); ``tree`` the checkpoint commit whose state the files take (None:
    the files of ``start``). The index stays at ``start``: the restored changes show as the
    uncommitted changes they were. The lost host's worktree may still be registered on the
    same branch (shared storage): it is stale, and git is told to ignore it.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    async with repo_lock(repo):  # other workers on this host may be adding worktrees to it
        await git("worktree", "prune", cwd=repo, check=False)
        await git("worktree", "add", "--quiet", "--force", "--detach", str(dest), start, cwd=repo)
    await git("checkout", "--quiet", "--ignore-other-worktrees", "-B", branch, start, cwd=dest)
    if tree is not None and tree != start:
        await git("read-tree", "-m", "-u", "HEAD", tree, cwd=dest)
        await git("reset", "--quiet", "--mixed", "HEAD", cwd=dest)


async def parent_of(repo: Path, commit: str) -> str:
    return (await git("rev-parse", "--verify", f"{commit}^", cwd=repo)).stdout.strip()
