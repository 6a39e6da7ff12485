"""Branches of a repository: commit, push, rename, list, and moving a branch others may have open.

Moving a branch is the dangerous part: the branch may be checked out in the user's own worktree.
``move_branch`` only moves it when every checkout of it is clean, moves the ref with a
compare-and-swap (``update-ref <new> <old>``) and then brings that checkout's index and files along
with a two-way ``read-tree -m -u``, which refuses rather than overwrite anything. Nothing here
stashes, resets or deletes a user's work.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from codeyard.domain.errors import BadRequest, Conflict, NotFound, ValidationFailed
from codeyard.workspace.git import GitError, GitResult, git, resolve_commit

__all__ = [
    "Author",
    "BranchInfo",
    "Moved",
    "branch_head",
    "checkouts",
    "commit_all",
    "ensure_checkouts_ready",
    "git_error",
    "identity_env",
    "is_ancestor",
    "list_branches",
    "move_branch",
    "push",
    "rename_branch",
    "undo_move",
]

logger = logging.getLogger(__name__)

# Markers of an operation in progress; a branch must not move under a half-done merge or rebase.
_IN_PROGRESS = ("MERGE_HEAD", "CHERRY_PICK_HEAD", "REVERT_HEAD", "rebase-merge", "rebase-apply")
_OVERWRITTEN = re.compile(r"'(.+)' would be (?:overwritten|lost|removed)")


@dataclass(frozen=True, slots=True)
class Author:
    """Who a commit made by Codeyard is attributed to."""

    name: str
    email: str


_FALLBACK_IDENTITY = Author("Codeyard", "codeyard@localhost")


@dataclass(frozen=True, slots=True)
class BranchInfo:
    """One local branch; ``ahead``/``behind`` count commits against the default branch."""

    name: str
    head: str
    ahead: int | None
    behind: int | None
    pushed: bool


@dataclass(frozen=True, slots=True)
class Moved:
    """A branch move that happened, with the checkouts whose files followed: enough to undo it."""

    repo: Path
    branch: str
    old: str
    new: str
    checkouts: list[Path] = field(default_factory=list)


def git_error(args: tuple[str, ...], cwd: Path, result: GitResult) -> GitError:
    """A ``GitError`` for an exit code the caller did not expect (``check=False`` commands)."""
    return GitError(
        f"`git {' '.join(args)}` in {cwd} failed (exit {result.returncode}): "
        f"{result.stderr.strip() or 'no error output'}",
        command=args,
        returncode=result.returncode,
        stderr=result.stderr,
    )


async def identity_env(repo: Path, author: Author | None) -> dict[str, str]:
    """Environment for commands that create commits.

    A given author (a run's owner's git identity) is author and committer: the commit never
    depends on the server account's git config. Without one, when git has no usable committer
    identity (a service account without ``user.email``), "Codeyard" commits instead of every
    resolution failing with "please tell me who you are".
    """
    env: dict[str, str] = {}
    if author is not None:
        env.update(GIT_AUTHOR_NAME=author.name, GIT_AUTHOR_EMAIL=author.email)
        env.update(GIT_COMMITTER_NAME=author.name, GIT_COMMITTER_EMAIL=author.email)
        return env
    probe = await git("var", "GIT_COMMITTER_IDENT", cwd=repo, check=False)
    if probe.returncode != 0:
        who = author or _FALLBACK_IDENTITY
        env.setdefault("GIT_AUTHOR_NAME", who.name)
        env.setdefault("GIT_AUTHOR_EMAIL", who.email)
        env.update(GIT_COMMITTER_NAME=who.name, GIT_COMMITTER_EMAIL=who.email)
    return env


def _check_ref_arg(kind: str, name: str) -> None:
    if not name or name.startswith("-"):
        raise BadRequest(f"{kind} {name!r} is not a usable name")


async def branch_head(repo: Path, branch: str, kind: str = "branch") -> str:
    """The commit ``branch`` points at; ``BadRequest`` naming it when there is no such branch."""
    _check_ref_arg(kind, branch)
    head = await resolve_commit(repo, f"refs/heads/{branch}")
    if head is None:
        raise BadRequest(f"{kind} '{branch}' does not exist in {repo}", branch=branch)
    return head


async def is_ancestor(repo: Path, ancestor: str, descendant: str) -> bool:
    """True when ``ancestor`` is reachable from ``descendant`` (a commit is its own ancestor)."""
    args = ("merge-base", "--is-ancestor", ancestor, descendant)
    result = await git(*args, cwd=repo, check=False)
    if result.returncode not in (0, 1):
        raise git_error(args, repo, result)
    return result.returncode == 0


async def commit_all(worktree: Path, message: str, author: Author | None = None) -> str | None:
    """Commit everything outstanding in ``worktree`` (untracked too, .gitignore respected).

    Returns the new commit, or None when there was nothing to commit. Hooks are skipped: this
    records an agent's work on its own run branch, like a checkpoint, and must not block on a
    hook written for people; ``push`` still runs the user's pre-push hook.
    """
    if not message.strip():
        raise BadRequest("a commit message is required")
    await git("add", "--all", cwd=worktree)
    args = ("diff", "--cached", "--quiet")
    staged = await git(*args, cwd=worktree, check=False)
    if staged.returncode == 0:
        return None
    if staged.returncode != 1:
        raise git_error(args, worktree, staged)
    env = await identity_env(worktree, author)
    await git("commit", "--quiet", "--no-verify", "-m", message, cwd=worktree, env=env)
    return (await git("rev-parse", "HEAD", cwd=worktree)).stdout


async def push(
    repo: Path,
    branch: str,
    remote: str = "origin",
    force: bool = False,
    env: dict[str, str] | None = None,
) -> None:
    """Push ``branch`` to the same name on ``remote`` and make that its upstream (``env``: e.g.
    ``GIT_SSH_COMMAND`` with the run owner's SSH key).

    ``force`` uses ``--force-with-lease``: the remote is overwritten only if it is still where we
    last saw it, so someone else's commits are never lost. Rejections are ``Conflict``.
    """
    _check_ref_arg("remote", remote)
    await branch_head(repo, branch)
    known = await git("remote", "get-url", remote, cwd=repo, check=False)
    if known.returncode != 0:
        raise BadRequest(
            f"the repository {repo} has no remote named '{remote}'; add one with "
            f"`git -C {repo} remote add {remote} <url>` and push again",
            remote=remote,
        )
    ref = f"refs/heads/{branch}"
    lease = ("--force-with-lease",) if force else ()
    args = ("push", "--porcelain", "--set-upstream", *lease, remote, f"{ref}:{ref}")
    result = await git(*args, cwd=repo, env=env, check=False, timeout=300)
    if result.returncode == 0:
        return
    rejected = [line for line in result.stdout.splitlines() if line.startswith("!")]
    if not rejected:
        raise git_error(args, repo, result)
    reason = rejected[0].rsplit("\t", 1)[-1]
    hint = (
        "someone else pushed to it since it was last fetched; fetch and look before forcing"
        if "stale info" in reason
        else "it has commits this branch lacks; rebase onto it, or push with force"
    )
    raise Conflict(
        f"'{remote}' rejected the push of '{branch}' {reason}: {hint}", remote=remote, reason=reason
    )


async def rename_branch(repo: Path, old: str, new: str) -> None:
    """Rename a branch (its worktree, if any, follows); 422 for invalid names, 409 if taken."""
    checked = await git("check-ref-format", "--branch", new, cwd=repo, check=False)
    # --branch expands "@{-1}" and friends: accept only names that come back unchanged.
    if new.startswith("-") or checked.returncode != 0 or checked.stdout != new:
        raise ValidationFailed(
            f"'{new}' is not a valid branch name (see `git check-ref-format`)",
            errors=[{"loc": ["name"], "msg": "invalid branch name"}],
        )
    _check_ref_arg("branch", old)
    if await resolve_commit(repo, f"refs/heads/{old}") is None:
        raise NotFound(f"branch '{old}' does not exist in {repo}")
    if await resolve_commit(repo, f"refs/heads/{new}") is not None:
        raise Conflict(f"a branch named '{new}' already exists in {repo}; choose another name")
    try:
        await git("branch", "--move", "--", old, new, cwd=repo)
    except GitError as exc:  # e.g. "a/b" while "a" exists: the ref namespace clashes
        raise Conflict(f"cannot rename '{old}' to '{new}': {exc.stderr.strip()}") from exc


async def list_branches(repo: Path, default_branch: str) -> list[BranchInfo]:
    """Every local branch with ahead/behind against ``default_branch`` and whether it is pushed.

    ``pushed``: its upstream, or a same-named branch on a configured remote, is at its head.
    ``ahead``/``behind`` are None when the default branch does not exist.
    """
    fmt = "%(refname)%00%(objectname)%00%(upstream)"
    out = await git("for-each-ref", f"--format={fmt}", "refs/heads", "refs/remotes", cwd=repo)
    heads: list[tuple[str, str, str]] = []
    remote_refs: dict[str, str] = {}
    for line in out.stdout.splitlines():
        ref, oid, upstream = line.split("\0")
        if ref.startswith("refs/heads/"):
            heads.append((ref.removeprefix("refs/heads/"), oid, upstream))
        else:
            remote_refs[ref] = oid
    remotes = (await git("remote", cwd=repo)).stdout.split() if remote_refs else []
    default_head = next((oid for name, oid, _ in heads if name == default_branch), None)
    branches = []
    for name, oid, upstream in heads:
        candidates = [upstream] if upstream else []
        candidates += [f"refs/remotes/{r}/{name}" for r in remotes]
        pushed = any(remote_refs.get(c) == oid for c in candidates)
        ahead = behind = None
        if default_head is not None:
            ahead, behind = await _ahead_behind(repo, default_head, oid)
        branches.append(BranchInfo(name, oid, ahead, behind, pushed))
    return branches


async def _ahead_behind(repo: Path, base: str, head: str) -> tuple[int, int]:
    if base == head:
        return 0, 0
    counts = await git("rev-list", "--left-right", "--count", f"{base}...{head}", cwd=repo)
    behind, ahead = counts.stdout.split()
    return int(ahead), int(behind)


def _worktree_records(porcelain: str) -> list[dict[str, str]]:
    """Records of ``git worktree list --porcelain -z``: ``{"worktree": path, "branch": ...}``."""
    records: list[dict[str, str]] = [{}]
    for item in porcelain.split("\0"):
        if item:
            key, _, value = item.partition(" ")
            records[-1][key] = value
        elif records[-1]:
            records.append({})
    return [r for r in records if "worktree" in r]


async def _checkouts(repo: Path, branch: str) -> list[Path]:
    """Worktrees that have ``branch`` checked out, or are in the middle of rebasing it.

    Worktrees whose directory is gone (prunable) have no files to update and are skipped.
    """
    out = await git("worktree", "list", "--porcelain", "-z", cwd=repo)
    ref = f"refs/heads/{branch}"
    found: list[Path] = []
    for record in _worktree_records(out.stdout):
        if "prunable" in record or "bare" in record:
            continue
        path = Path(record["worktree"])
        if record.get("branch") == ref or ("detached" in record and await _rebasing(path, ref)):
            found.append(path)
    return found


async def _rebasing(worktree: Path, ref: str) -> bool:
    """Whether ``worktree`` is rebasing ``ref``. A worktree git cannot open is not: one being
    added (by a run's preparation, or the worktree pool's fill) is listed, detached and locked
    "initializing", before its directory is a checkout, and a pooled one may be renamed away
    by the run that takes it; landing meanwhile must not fail on either."""
    names = ("rebase-merge/head-name", "rebase-apply/head-name")
    args = [arg for name in names for arg in ("--git-path", name)]
    try:
        paths = await git("rev-parse", *args, cwd=worktree)
    except GitError:
        return False
    for line in paths.stdout.splitlines():
        head_name = worktree / line
        if head_name.is_file() and head_name.read_text().strip() == ref:
            return True
    return False


async def _ensure_ready(worktree: Path, branch: str, old: str, new: str) -> None:
    """Refuse (409) unless ``worktree``'s files can follow ``branch`` from ``old`` to ``new``.

    Clean means no staged or unstaged change to tracked files and no merge or rebase under way.
    Untracked files only block when the new commit would write over them (git's own dry run
    decides, ignored files included): people keep notes and .env files around, and those are
    never touched.
    """
    args = [arg for name in _IN_PROGRESS for arg in ("--git-path", name)]
    markers = await git("rev-parse", *args, cwd=worktree)
    if any((worktree / p).exists() for p in markers.stdout.splitlines()):
        raise Conflict(
            f"a merge, rebase or cherry-pick is under way in {worktree}; finish or abort it "
            "there, then try again",
            worktree=str(worktree),
        )
    # Read-only: status refreshes stat data in memory only (no optional index lock), so a
    # refused landing leaves even the user's index file byte-for-byte as it was.
    status = await git(
        "--no-optional-locks",
        "status",
        "--porcelain",
        "-z",
        "--untracked-files=no",
        cwd=worktree,
        check=True,
    )
    changed = _porcelain_paths(status.stdout)
    if changed:
        raise Conflict(
            f"'{branch}' is checked out in {worktree} with uncommitted changes; commit or stash "
            "them there, then try again (Codeyard never overwrites or stashes your work)",
            worktree=str(worktree),
            changes=changed,
        )
    dry_run = await git("read-tree", "-m", "-u", "-n", old, new, cwd=worktree, check=False)
    if dry_run.returncode != 0:
        raise Conflict(
            f"updating {worktree} to the new '{branch}' would overwrite files that are not "
            f"committed there: {dry_run.stderr.strip()}. Move them away, then try again",
            worktree=str(worktree),
            untracked=_OVERWRITTEN.findall(dry_run.stderr),
        )


def _porcelain_paths(out: str) -> list[str]:
    """Paths of ``status --porcelain -z`` output; a rename's source entry is skipped."""
    entries, paths = iter(out.split("\0")), []
    for entry in entries:
        if len(entry) > 3:
            paths.append(entry[3:])
            if entry[0] in "RC":
                next(entries, None)
    return paths


async def checkouts(repo: Path, branch: str) -> list[Path]:
    """Worktrees that have ``branch`` checked out (or are rebasing it): landing on ``branch``
    moves their files too, which a person should confirm first (issue 14)."""
    return await _checkouts(repo, branch)


async def ensure_checkouts_ready(repo: Path, branch: str, old: str, new: str) -> list[Path]:
    """Check every checkout of ``branch`` (see ``_ensure_ready``) and return them."""
    checkouts = await _checkouts(repo, branch)
    for worktree in checkouts:
        await _ensure_ready(worktree, branch, old, new)
    return checkouts


async def _update_ref(repo: Path, branch: str, new: str, old: str, reason: str) -> None:
    args = ("update-ref", "-m", reason, f"refs/heads/{branch}", new, old)
    try:
        await git(*args, cwd=repo)
    except GitError as exc:
        raise Conflict(
            f"could not move '{branch}' in {repo}: {exc.stderr.strip()}. It changed or is locked "
            "by another git command; try again",
            branch=branch,
        ) from exc


async def move_branch(repo: Path, branch: str, old: str, new: str, *, reason: str) -> Moved:
    """Move ``branch`` from ``old`` to ``new``; its clean checkouts follow, or nothing moves."""
    checkouts = await ensure_checkouts_ready(repo, branch, old, new)
    await _update_ref(repo, branch, new, old, reason)
    moved = Moved(repo, branch, old, new)
    try:
        for worktree in checkouts:
            await git("read-tree", "-m", "-u", old, new, cwd=worktree)
            moved.checkouts.append(worktree)
    except BaseException:
        await undo_move(moved)
        raise
    return moved


async def undo_move(moved: Moved) -> None:
    """Put a moved branch and the checkouts that followed it back; logs what it cannot undo."""
    for worktree in reversed(moved.checkouts):
        try:
            await git("read-tree", "-m", "-u", moved.new, moved.old, cwd=worktree)
        except GitError as exc:  # edited meanwhile: leave their files, say so
            logger.warning("could not restore the files of %s: %s", worktree, exc.detail)
    try:
        await _update_ref(moved.repo, moved.branch, moved.old, moved.new, "codeyard: undo")
    except Conflict as exc:
        logger.warning("could not move %s back in %s: %s", moved.branch, moved.repo, exc.detail)
