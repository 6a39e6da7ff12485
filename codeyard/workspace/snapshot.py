"""The worktree's whole state as a commit, made without moving anything.

Landing works from such a commit, so a refused landing (conflict, dirty target) leaves even the
run branch untouched; only after success does the run branch adopt it.
"""

from __future__ import annotations

from pathlib import Path

from codeyard.workspace.branches import Author, identity_env
from codeyard.workspace.diff import snapshot_tree
from codeyard.workspace.git import git


async def snapshot_commit(
    worktree: Path, message: str, author: Author | None = None
) -> tuple[str, str]:
    """``(head, commit)``: the worktree state as a child of HEAD, or HEAD itself if unchanged."""
    head = (await git("rev-parse", "--verify", "HEAD^{commit}", cwd=worktree)).stdout
    tree = await snapshot_tree(worktree)
    if tree == (await git("rev-parse", f"{head}^{{tree}}", cwd=worktree)).stdout:
        return head, head
    env = await identity_env(worktree, author)
    commit = (
        await git("commit-tree", tree, "-p", head, "-m", message, cwd=worktree, env=env)
    ).stdout
    return head, commit


async def adopt_snapshot(worktree: Path, branch: str, head: str, commit: str) -> None:
    """Point the run branch at its snapshot; the index follows (the files already match)."""
    if commit == head:
        return
    await git(
        "update-ref",
        "-m",
        "codeyard: commit outstanding work",
        f"refs/heads/{branch}",
        commit,
        head,
        cwd=worktree,
    )
    await git("read-tree", "--reset", "HEAD", cwd=worktree)
