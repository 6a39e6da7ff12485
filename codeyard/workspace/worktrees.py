"""Run worktrees: where they live, what their branch is called, and creating/removing them.

Each run works in its own ``git worktree`` on its own branch, so the user's checkout, index and
other runs are never touched. Creation leaves nothing behind when it fails, and removal can be
repeated safely (retention and discard may both reach the same run).
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

from codeyard.domain.errors import Conflict
from codeyard.domain.ids import slugify
from codeyard.workspace.git import GitError, git

__all__ = ["branch_name", "create_worktree", "head_commit", "remove_worktree", "worktree_dir"]

BRANCH_PREFIX = "codeyard/"

logger = logging.getLogger(__name__)


def branch_name(number: int, title: str) -> str:
    """The run branch, ``codeyard/<number>-<slug>``: the number keeps it unique per project."""
    return f"{BRANCH_PREFIX}{number}-{slugify(title)}"


def worktree_dir(root: Path, project_slug: str, number: int, slug: str, repo_name: str) -> Path:
    """``root/<project_slug>/<number>-<slug>/<repo_name>``; refuses names that would escape root."""
    for label, part in (("project slug", project_slug), ("slug", slug), ("repo name", repo_name)):
        if not part or part in {".", ".."} or any(c in part for c in "/\\\0"):
            raise ValueError(f"{label} {part!r} cannot be used as a directory name")
    return root / project_slug / f"{number}-{slug}" / repo_name


async def _branch_exists(repo: Path, branch: str) -> bool:
    result = await git(
        "show-ref", "--verify", "--quiet", f"refs/heads/{branch}", cwd=repo, check=False
    )
    return result.returncode == 0


def _check_branch(branch: str) -> None:
    if not branch or branch.startswith("-"):
        raise ValueError(f"{branch!r} is not a usable branch name")


async def create_worktree(repo: Path, dest: Path, branch: str, base_commit: str) -> None:
    """Add a worktree at ``dest`` on the new ``branch`` starting at ``base_commit``.

    Raises ``Conflict`` if ``dest`` already exists and ``GitError`` if git refuses (the branch
    exists, the base is unknown...). On any failure, cancellation included, the directory, the
    branch and the worktree registration made by this call are removed again.
    """
    _check_branch(branch)
    await asyncio.to_thread(_prepare_parent, dest)
    branch_existed = await _branch_exists(repo, branch)
    try:
        await git(
            "worktree", "add", "--quiet", "-b", branch, "--", str(dest), base_commit, cwd=repo
        )
    except BaseException:
        try:
            await _remove(repo, dest, None if branch_existed else branch)
        except (GitError, OSError) as cleanup_error:  # keep the original error, which says why
            logger.warning("could not clean up failed worktree %s: %s", dest, cleanup_error)
        raise


async def remove_worktree(
    repo: Path, dest: Path, branch: str | None, delete_branch: bool = True
) -> None:
    """Remove the worktree at ``dest`` and, if ``delete_branch``, its ``branch``.

    Idempotent: parts that are already gone (directory, registration, branch, even ``repo``) are
    skipped. Uncommitted work in the worktree is discarded: callers checkpoint first.
    """
    if branch is not None:
        _check_branch(branch)
    await _remove(repo, dest, branch if delete_branch else None)


async def _remove(repo: Path, dest: Path, branch: str | None) -> None:
    repo_present = await asyncio.to_thread(_check_removable, repo, dest)
    if repo_present:
        # Force twice: also removes a worktree locked by an interrupted `worktree add`, and the
        # registration of one whose directory is already gone. Failure here is not final: the
        # directory is deleted and the registration pruned below.
        await git("worktree", "remove", "--force", "--force", str(dest), cwd=repo, check=False)
    await asyncio.to_thread(_delete_path, dest)
    if not repo_present:
        return
    await git("worktree", "prune", cwd=repo)
    if branch is not None and await _branch_exists(repo, branch):
        await git("branch", "-D", "--", branch, cwd=repo)


def _prepare_parent(dest: Path) -> None:
    if dest.exists() or dest.is_symlink():
        raise Conflict(f"the worktree directory {dest} already exists; remove it or pick another")
    dest.parent.mkdir(parents=True, exist_ok=True)


def _check_removable(repo: Path, dest: Path) -> bool:
    """Refuse to delete the repository itself; say whether it is still there."""
    dest_abs, repo_abs = dest.resolve(), repo.resolve()
    if dest_abs == repo_abs or dest_abs in repo_abs.parents:
        raise ValueError(f"refusing to remove {dest}: it contains the repository {repo}")
    return repo.is_dir()


def _delete_path(dest: Path) -> None:
    if dest.is_dir() and not dest.is_symlink():
        shutil.rmtree(dest)
    elif dest.exists() or dest.is_symlink():
        dest.unlink()


async def head_commit(worktree: Path) -> str:
    """The commit id checked out in ``worktree``."""
    result = await git("rev-parse", "--verify", "HEAD", cwd=worktree)
    return result.stdout
