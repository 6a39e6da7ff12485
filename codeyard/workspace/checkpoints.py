"""Checkpoints: commits of a worktree's full state kept on refs outside the run branch.

A checkpoint is made from a throw-away index (see ``snapshot_index``) with ``git commit-tree``
and stored with ``git update-ref`` on a ref the caller picks (``refs/codeyard/<run-id>/<n>``), so
taking one never moves HEAD, the run branch or the worktree's index, whatever agent is running.
The ref keeps the commit, and so every file of that state, safe from ``git gc``.

Files ignored by ``.gitignore`` are not part of a checkpoint: restoring one leaves them alone.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from pathlib import Path

from codeyard.workspace.diff import diff_between, snapshot_index, snapshot_tree
from codeyard.workspace.git import both, git

__all__ = [
    "create_checkpoint",
    "create_checkpoint_with_stats",
    "delete_checkpoint_refs",
    "list_checkpoint_refs",
    "restore_checkpoint",
]

# Checkpoint commits never leave the machine: a fixed identity means a repository without
# user.name/user.email can still be checkpointed, and the commits are easy to recognise.
_IDENTITY = {
    "GIT_AUTHOR_NAME": "Codeyard",
    "GIT_AUTHOR_EMAIL": "checkpoints@codeyard.invalid",
    "GIT_COMMITTER_NAME": "Codeyard",
    "GIT_COMMITTER_EMAIL": "checkpoints@codeyard.invalid",
}


_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
#: The tree of each checkpoint commit this process made or reused, by commit id (a commit's
#: tree never changes), for the next checkpoint's question "is the state the previous one's?"
#: (:func:`_head_and_tree`). Bounded: a run needs only its last one, 60 runs at once 60.
_TREES_KEPT = 1024
_tree_of: OrderedDict[str, str] = OrderedDict()


def _keep_tree(commit: str, tree: str) -> None:
    _tree_of[commit] = tree
    _tree_of.move_to_end(commit)
    while len(_tree_of) > _TREES_KEPT:
        _tree_of.popitem(last=False)


def _check_ref(ref: str, what: str = "ref") -> None:
    # Refs are passed where git would also take options: insist on a full refs/ name, no globs.
    if not ref.startswith("refs/") or any(c in ref for c in "*?[\\"):
        raise ValueError(f"{ref!r} is not a usable checkpoint {what} (want refs/...)")


async def create_checkpoint(worktree: Path, ref: str, message: str) -> str:
    """Commit the worktree's full state (parent: its HEAD) to ``ref``; return the commit id.

    An existing ``ref`` is overwritten, so a retried checkpoint cannot get stuck on its own ref.
    """
    parent, tree, _ = await _head_and_tree(worktree, ref)
    return await _commit(worktree, ref, message, parent, tree)


async def create_checkpoint_with_stats(
    worktree: Path, ref: str, message: str, base: str, previous: str | None = None
) -> tuple[str, dict[str, int]]:
    """``create_checkpoint``, and the diff stats of its state against ``base`` taken from the
    same snapshot while the commit is written (a turn end waits on both; bench/overhead.py).

    ``previous``: the commit of the checkpoint before. When the worktree holds exactly its
    files on the same HEAD (a turn that changed nothing), that commit is this checkpoint too:
    ``ref`` is pointed at it and no commit is made (same tree, same parent: a new commit would
    differ only in its message and time)."""
    parent, tree, same = await _head_and_tree(worktree, ref, previous)
    if same and previous is not None:
        _keep_tree(previous, tree)
        point = git("update-ref", "-m", "codeyard: checkpoint", ref, previous, cwd=worktree)
        _, stats = await both(point, diff_between(worktree, base, tree, "stats"))
        return previous, stats
    return await both(
        _commit(worktree, ref, message, parent, tree),
        diff_between(worktree, base, tree, "stats"),
    )


async def _head_and_tree(
    worktree: Path, ref: str, previous: str | None = None
) -> tuple[str, str, bool]:
    """The parent for a commit of the worktree's state (HEAD), the tree of that state, and
    whether checkpoint commit ``previous`` is that tree on that HEAD (one ``rev-parse`` for all,
    beside the snapshot).

    With no ``previous`` to compare (a run's first checkpoint, a manual one) HEAD is not read
    here: the parent is ``HEAD``, which ``commit-tree -p`` resolves to its commit as
    ``rev-parse HEAD^{commit}`` did, one git process fewer (bench/agents_scale.py: one per
    run). HEAD is then read just after the snapshot rather than beside it: a commit made
    during the snapshot (at a turn's end only a terminal or a leftover background job could)
    becomes the parent, as one made just before it would have; the files are the snapshot's
    either way.

    Likewise when ``previous`` was made (or reused) by this process and its tree, kept by
    :func:`_keep_tree`, is not the state's: the state is not the previous one, so HEAD need not
    be compared (a turn that changed files; one process fewer). When the trees are the same
    (a turn that changed nothing), HEAD is read after the snapshot rather than beside it (one
    git call's wait longer at that turn's end); after a restart, beside it as before."""
    _check_ref(ref)
    if previous is None or not _SHA.fullmatch(previous):
        return "HEAD", await snapshot_tree(worktree), False
    revs = ["HEAD^{commit}", f"{previous}^{{tree}}", f"{previous}^"]
    known = _tree_of.get(previous)
    if known is None:  # HEAD and the worktree's state at once: independent git processes
        found, tree = await both(
            git("rev-parse", *revs, "--", cwd=worktree, check=False), snapshot_tree(worktree)
        )
    else:
        tree = await snapshot_tree(worktree)
        if tree != known:  # not the previous state, whatever HEAD is: a commit on HEAD
            return "HEAD", tree, False
        found = await git("rev-parse", *revs, "--", cwd=worktree, check=False)
    lines = found.stdout.split()
    if found.returncode != 0 or len(lines) < len(revs):  # ``previous`` is gone, or HEAD is
        head = (await git("rev-parse", "--verify", "HEAD^{commit}", cwd=worktree)).stdout
        return head, tree, False
    head = lines[0]
    return head, tree, lines[1:3] == [tree, head]


async def _commit(worktree: Path, ref: str, message: str, parent: str, tree: str) -> str:
    """Commit ``tree`` on ``parent`` (a commit id, or ``HEAD``) and point ``ref`` at it."""
    args = ("commit-tree", "--no-gpg-sign", "-p", parent, "-m", message, tree)
    commit = (await git(*args, cwd=worktree, env=_IDENTITY)).stdout
    _keep_tree(commit, tree)
    await git("update-ref", "-m", "codeyard: checkpoint", ref, commit, cwd=worktree)
    return commit


async def restore_checkpoint(worktree: Path, commit: str) -> None:
    """Make the worktree's files exactly the checkpoint's, leaving HEAD and the branch alone.

    How: a throw-away index is filled with the worktree's current state (untracked files
    included), then ``read-tree --reset -u <checkpoint>`` on it does what ``reset --hard`` does,
    but against that index: files that differ are rewritten, files the checkpoint lacks are
    deleted, missing ones come back, and unchanged files keep their mtime (no needless rebuilds).
    Ignored untracked files are not in that index and so are untouched, unless they stand where
    the checkpoint has a file (same path, or a directory in its way): the checkpoint wins.
    Finally the worktree's own index is reset to HEAD (stat data kept where valid), so the
    restored state shows as unstaged changes and untracked files relative to the unchanged
    branch; anything staged before is unstaged.
    """
    if not commit or commit.startswith("-"):
        raise ValueError(f"{commit!r} is not a usable checkpoint commit")
    tree = (await git("rev-parse", "--verify", f"{commit}^{{tree}}", cwd=worktree)).stdout
    async with snapshot_index(worktree) as env:
        await git("read-tree", "--reset", "-u", tree, cwd=worktree, env=env)
    await git("read-tree", "--reset", "HEAD", cwd=worktree)


async def list_checkpoint_refs(repo: Path, prefix: str) -> list[tuple[str, str]]:
    """``(ref, commit)`` for every ref at or under ``prefix``, in version order (2 before 10).

    ``prefix`` matches whole path components: ``refs/codeyard/run_1`` does not list
    ``refs/codeyard/run_10/1``. Works from the main checkout or any of its worktrees.
    """
    _check_ref(prefix, "prefix")
    fmt = "--format=%(refname) %(objectname)"
    args = ("for-each-ref", "--sort=version:refname", fmt, prefix.rstrip("/"))
    out = (await git(*args, cwd=repo)).stdout
    pairs = (line.split(" ") for line in out.splitlines() if line)
    return [(ref, sha) for ref, sha in pairs]


async def delete_checkpoint_refs(repo: Path, prefix: str) -> int:
    """Delete every ref at or under ``prefix``; returns how many there were.

    One ``update-ref -d`` per ref (the git runner has no stdin for ``update-ref --stdin``);
    run ends and retention delete tens of refs, not thousands.
    """
    refs = await list_checkpoint_refs(repo, prefix)
    for ref, sha in refs:
        await git("update-ref", "-m", "codeyard: checkpoint deleted", "-d", ref, sha, cwd=repo)
    return len(refs)
