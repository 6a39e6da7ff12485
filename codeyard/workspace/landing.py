"""Landing a run: merge, squash or rebase its branch into a target branch, across repositories.

Landing happens in two steps so that a refusal never leaves anything half-done. ``plan_landing``
computes the new target commit from objects alone (``merge-tree --write-tree`` and
``commit-tree``): no ref, index or file changes, so a conflict costs nothing. ``apply_landing``
then moves the target ref with a compare-and-swap and lets a clean checkout of it follow (see
``branches.move_branch``). Rebasing replays commits the same way, without a worktree.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from codeyard.domain.errors import BadRequest, Conflict
from codeyard.workspace.branches import (
    Author,
    Moved,
    branch_head,
    ensure_checkouts_ready,
    git_error,
    identity_env,
    is_ancestor,
    move_branch,
    undo_move,
)
from codeyard.workspace.git import current_branch, git, resolve_commit

__all__ = [
    "LandingPlan",
    "LandingRequest",
    "NothingToLand",
    "Strategy",
    "apply_landing",
    "check_conflicts",
    "land_all",
    "plan_landing",
    "rebase_branch",
]

Strategy = Literal["merge", "squash", "rebase"]
_AUTHOR = re.compile(r"^(.*) <(.*)> (\d+) ([+-]\d{4})$")


class NothingToLand(Conflict):
    """The target already has everything the source would bring."""

    title = "Nothing to land"


@dataclass(frozen=True, slots=True)
class LandingPlan:
    """The commit ``target_branch`` would move to; ``old_commit`` guards against it moving."""

    repo: Path
    target_branch: str
    old_commit: str
    new_commit: str
    source_commit: str
    strategy: Strategy
    fast_forward: bool


@dataclass(frozen=True, slots=True)
class LandingRequest:
    """One repository's part of a (possibly multi-repository) landing."""

    repo: Path
    target_branch: str
    source: str
    strategy: Strategy
    message: str | None = None
    author: Author | None = None


@dataclass(frozen=True, slots=True)
class _Commit:
    tree: str
    parents: list[str]
    author_env: dict[str, str]
    message: str

    @property
    def subject(self) -> str:
        return self.message.partition("\n")[0]


async def _commit(repo: Path, ref: str) -> str:
    commit = await resolve_commit(repo, ref)
    if commit is None:
        raise BadRequest(f"'{ref}' names no commit in repository '{repo.name}'", ref=ref)
    return commit


async def _tree(repo: Path, commit: str) -> str:
    return (await git("rev-parse", f"{commit}^{{tree}}", cwd=repo)).stdout


async def _merge_tree(repo: Path, ours: str, theirs: str) -> tuple[str, list[str]]:
    """The merged tree and the conflicted paths (empty when clean); writes objects only."""
    args = ("merge-tree", "--write-tree", "--name-only", "--no-messages", "-z", ours, theirs)
    result = await git(*args, cwd=repo, check=False)
    if result.returncode not in (0, 1):
        if "unrelated histories" in result.stderr:
            raise BadRequest(f"{ours} and {theirs} share no history in {repo}; cannot merge them")
        raise git_error(args, repo, result)
    tree, *paths = result.stdout.split("\0")
    return tree, [p for p in paths if p] if result.returncode == 1 else []


async def _commit_tree(
    repo: Path, tree: str, parents: Sequence[str], message: str, env: dict[str, str]
) -> str:
    parent_args = [arg for parent in parents for arg in ("-p", parent)]
    result = await git("commit-tree", tree, *parent_args, "-m", message, cwd=repo, env=env)
    return result.stdout


async def _read_commit(repo: Path, commit: str) -> _Commit:
    raw = (await git("cat-file", "commit", commit, cwd=repo)).stdout
    header, _, message = raw.partition("\n\n")
    tree, parents, author_env = "", [], {}
    for line in header.splitlines():
        key, _, value = line.partition(" ")
        if key == "tree":
            tree = value
        elif key == "parent":
            parents.append(value)
        elif key == "author" and (match := _AUTHOR.match(value)):
            name, email, seconds, zone = match.groups()
            author_env = {
                "GIT_AUTHOR_NAME": name,
                "GIT_AUTHOR_EMAIL": email,
                "GIT_AUTHOR_DATE": f"@{seconds} {zone}",
            }
    return _Commit(tree, parents, author_env, message)


async def check_conflicts(repo: Path, target_branch: str, source_commit: str) -> list[str]:
    """Paths that merging ``source_commit`` into ``target_branch`` would conflict on.

    Touches no ref, index or worktree (``merge-tree`` only writes objects).
    """
    target = await branch_head(repo, target_branch, "target branch")
    source = await _commit(repo, source_commit)
    return (await _merge_tree(repo, target, source))[1]


async def plan_landing(
    repo: Path,
    target_branch: str,
    source: str,
    strategy: Strategy,
    message: str | None = None,
    *,
    author: Author | None = None,
) -> LandingPlan:
    """Compute where ``target_branch`` goes when ``source`` lands on it, changing nothing.

    ``merge`` fast-forwards when it can, else makes a merge commit (parents target, source);
    ``squash`` makes one commit with the target as only parent; ``rebase`` replays the source's
    own commits onto the target (authors and messages kept). ``message`` is for the commit
    Codeyard makes (merge commit, squash); a default is derived when it is None.

    Raises ``BadRequest`` for an unknown branch or commit, ``Conflict`` with ``conflicts`` (the
    paths) when the changes do not merge cleanly, and ``NothingToLand`` when there is nothing.
    """
    target = await branch_head(repo, target_branch, "target branch")
    source_commit = await _commit(repo, source)
    if await is_ancestor(repo, source_commit, target):
        raise NothingToLand(f"No changes to land: '{target_branch}' already contains '{source}'.")
    env = await identity_env(repo, author)
    fast_forward = await is_ancestor(repo, target, source_commit)
    if strategy == "rebase":
        new = source_commit if fast_forward else await _replay(repo, target, source_commit, env)
        fast_forward = new == source_commit
    elif strategy in ("merge", "squash"):
        tree, conflicts = await _merge_tree(repo, target, source_commit)
        if conflicts:
            raise Conflict(
                f"'{source}' conflicts with '{target_branch}' in {len(conflicts)} file(s): "
                f"{', '.join(conflicts)}; nothing was changed",
                conflicts=conflicts,
            )
        if tree == await _tree(repo, target):
            raise NothingToLand(
                f"No changes to land: '{source}' changes nothing in '{target_branch}'."
            )
        fast_forward = fast_forward and strategy == "merge"
        if fast_forward:
            new = source_commit
        elif strategy == "merge":
            text = message or await _merge_message(repo, source, target_branch)
            new = await _commit_tree(repo, tree, [target, source_commit], text, env)
        else:
            text = message or await _squash_message(repo, source, target, source_commit)
            new = await _commit_tree(repo, tree, [target], text, env)
    else:
        raise BadRequest(f"unknown landing strategy {strategy!r}; use merge, squash or rebase")
    if new == target:
        raise NothingToLand(f"No changes to land: '{source}' changes nothing in '{target_branch}'.")
    return LandingPlan(repo, target_branch, target, new, source_commit, strategy, fast_forward)


async def _merge_message(repo: Path, source: str, target_branch: str) -> str:
    kind = "branch" if await resolve_commit(repo, f"refs/heads/{source}") else "commit"
    return f"Merge {kind} '{source}' into {target_branch}"


async def _squash_message(repo: Path, source: str, target: str, source_commit: str) -> str:
    log = await git(
        "log", "--reverse", "--no-merges", "--format=* %s", f"{target}..{source_commit}", cwd=repo
    )
    return f"Squashed '{source}'\n\n{log.stdout}".rstrip() + "\n"


async def _replay(repo: Path, onto: str, head: str, env: dict[str, str]) -> str:
    """Replay ``head``'s own commits onto ``onto``, like ``git rebase``, from objects only.

    Each commit C is cherry-picked by merging two commits that share exactly C's parent as merge
    base: C itself, and a throw-away commit of the current result on top of that parent. (git
    2.39's ``merge-tree`` has no ``--merge-base``.) Commits already upstream (same patch) or that
    become empty are dropped; merge commits are skipped, as ``git rebase`` does.
    """
    if await is_ancestor(repo, onto, head):
        return head
    listing = await git(
        "rev-list",
        "--reverse",
        "--no-merges",
        "--right-only",
        "--cherry-pick",
        f"{onto}...{head}",
        cwd=repo,
    )
    current, current_tree = onto, await _tree(repo, onto)
    for commit in listing.stdout.split():
        info = await _read_commit(repo, commit)
        base = info.parents[0] if info.parents else await _empty_root(repo, env)
        ours = await _commit_tree(repo, current_tree, [base], "replay", env)
        theirs = (
            commit if info.parents else await _commit_tree(repo, info.tree, [base], "replay", env)
        )
        tree, conflicts = await _merge_tree(repo, ours, theirs)
        if conflicts:
            raise Conflict(
                f"replaying commit {commit[:12]} ({info.subject}) conflicts in "
                f"{', '.join(conflicts)}; nothing was changed",
                conflicts=conflicts,
                commit=commit,
            )
        if tree == current_tree and info.tree != await _tree(repo, base):
            continue  # its change is already there: drop it, as git rebase does
        current = await _commit_tree(repo, tree, [current], info.message, env | info.author_env)
        current_tree = tree
    return current


async def _empty_root(repo: Path, env: dict[str, str]) -> str:
    """A parentless commit of the empty tree: the merge base for replaying a root commit."""
    empty_tree = (await git("mktree", cwd=repo)).stdout  # stdin is empty
    return await _commit_tree(repo, empty_tree, [], "empty", env)


async def apply_landing(repo: Path, plan: LandingPlan) -> None:
    """Move the target branch as planned; a clean checkout of it follows, a dirty one refuses.

    Refuses with ``Conflict`` before anything moves when the target is checked out with
    uncommitted changes, or when the target moved since the plan was made.
    """
    await move_branch(
        repo,
        plan.target_branch,
        plan.old_commit,
        plan.new_commit,
        reason=f"codeyard: {plan.strategy} {plan.source_commit[:12]}",
    )


async def land_all(requests: Sequence[LandingRequest]) -> list[LandingPlan | None]:
    """Land every repository's part, or none of them.

    All plans are made and all checkouts checked before any ref moves; if a move still fails,
    the ones already made are undone. Returns the plans in request order, None for repositories
    with nothing to land (a multi-repo run rarely changes every repository). Conflicts of all
    repositories are reported together: ``conflicts`` (paths) and ``repos`` (per repository).
    """
    plans: list[LandingPlan | None] = []
    failed: list[tuple[Path, Conflict]] = []
    for req in requests:
        try:
            plan = await plan_landing(
                req.repo,
                req.target_branch,
                req.source,
                req.strategy,
                req.message,
                author=req.author,
            )
        except NothingToLand:
            plan = None
        except Conflict as exc:
            failed.append((req.repo, exc))
            plan = None
        plans.append(plan)
    if failed:
        raise _combined(failed)
    todo = [plan for plan in plans if plan is not None]
    if not todo:
        raise NothingToLand("No changes to land: the run changed nothing in any repository.")
    for plan in todo:
        await ensure_checkouts_ready(
            plan.repo, plan.target_branch, plan.old_commit, plan.new_commit
        )
    moved: list[Moved] = []
    try:
        for plan in todo:
            reason = f"codeyard: {plan.strategy} {plan.source_commit[:12]}"
            moved.append(
                await move_branch(
                    plan.repo, plan.target_branch, plan.old_commit, plan.new_commit, reason=reason
                )
            )
    except BaseException:
        for done in reversed(moved):
            await undo_move(done)
        raise
    return plans


def _combined(failed: list[tuple[Path, Conflict]]) -> Conflict:
    if len(failed) == 1:
        repo, exc = failed[0]
        return Conflict(f"{repo.name}: {exc.detail}", **exc.extra, repo=str(repo))
    return Conflict(
        "conflicts in " + "; ".join(f"{repo.name}: {exc.detail}" for repo, exc in failed),
        conflicts=[path for _, exc in failed for path in exc.extra.get("conflicts", [])],
        repos=[{"repo": str(repo), **exc.extra} for repo, exc in failed],
    )


async def rebase_branch(worktree: Path, onto: str, committer: Author | None = None) -> str:
    """Rebase the branch checked out in ``worktree`` onto ``onto``; returns its new head.

    Replayed commits keep their authors; ``committer`` (the run's owner) commits them.

    The result is computed first (see ``_replay``), so on a conflict the branch, index and files
    are exactly as before and ``Conflict`` lists the paths. The worktree must be clean of tracked
    changes (commit them first), as for any branch move.
    """
    branch = await current_branch(worktree)
    if branch is None:
        raise BadRequest(f"{worktree} has no branch checked out (detached HEAD); cannot rebase")
    head = await branch_head(worktree, branch)
    onto_commit = await _commit(worktree, onto)
    new = await _replay(worktree, onto_commit, head, await identity_env(worktree, committer))
    if new != head:
        await move_branch(worktree, branch, head, new, reason=f"codeyard: rebase onto {onto}")
    return new
