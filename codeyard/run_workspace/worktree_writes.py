"""Acting on a run's worktrees where they are: commits, rebases, landing, discard, checkpoints.

Its own module because everything here changes something: the snapshot commit a landing or pull
request starts from (and the run branch adopting it), the worktree side of pushing to an open
pull request (commit what is left, rebase when the base moved), removing the worktrees when a
run is discarded, committing and rebasing the run branch on request, an agent merge's merge of
the target, and taking and restoring checkpoints (a row and an event stored by the process that
holds the worktrees). Each operation is an ``Op`` that ``worktree_dispatch.in_worktrees`` runs
in process or on the run's worker host; what only reads worktrees is ``worktree_reads``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codeyard.domain.errors import Conflict
from codeyard.run_workspace.checkpointing import take_checkpoint
from codeyard.run_workspace.removal import remove_run_worktrees
from codeyard.run_workspace.worktree_dispatch import Here, Op
from codeyard.run_workspace.worktree_reads import DIFF, DiffJob
from codeyard.store import runs
from codeyard.workspace import branches, landing
from codeyard.workspace.branches import Author
from codeyard.workspace.checkpoints import restore_checkpoint
from codeyard.workspace.git import git
from codeyard.workspace.snapshot import adopt_snapshot, snapshot_commit

__all__ = [
    "ADOPT",
    "CHECKPOINT",
    "COMMIT",
    "MERGE_IN",
    "PR_SYNC",
    "REBASE",
    "REMOVE",
    "RESTORE",
    "SNAPSHOT",
    "WRITES",
    "AdoptJob",
    "Adopted",
    "CheckpointJob",
    "Checkpointed",
    "CommitJob",
    "Committed",
    "MergeInJob",
    "MergedIn",
    "PrSyncJob",
    "PrSynced",
    "RebaseJob",
    "Rebased",
    "RemoveJob",
    "Removed",
    "RestoreJob",
    "Restored",
    "SnapshotJob",
    "Snapshots",
    "unfinished_merge",
]


# --- landing and pull requests: the worktree as a commit -----------------------------------


@dataclass(slots=True)
class SnapshotJob:
    worktrees: dict[str, str]
    message: str
    author_name: str | None = None
    author_email: str | None = None
    #: Refuse (nothing made) when a worktree is in the middle of a merge: ``unfinished``.
    refuse_mid_merge: bool = False
    #: Move this run branch to the snapshot right away (opening a pull request); None leaves
    #: every ref where it is (landing adopts only once it landed: :data:`ADOPT`).
    adopt_branch: str | None = None


@dataclass(slots=True)
class Snapshots:
    #: ``[head, commit]`` by repository id: the worktree's state as a child of HEAD (or HEAD).
    made: dict[str, list[str]] = field(default_factory=dict)
    #: Worktree path → paths still in conflict, for worktrees in the middle of a merge.
    unfinished: dict[str, list[str]] = field(default_factory=dict)


async def unfinished_merge(path: Path) -> list[str] | None:
    """Paths still in conflict when the worktree is in the middle of a merge, else None."""
    head = await git("rev-parse", "-q", "--verify", "MERGE_HEAD", cwd=path, check=False)
    if head.returncode != 0:
        return None
    unmerged = await git("diff", "--name-only", "--diff-filter=U", cwd=path, check=False)
    return unmerged.stdout.split()


async def _snapshot(_: Here, job: SnapshotJob) -> Snapshots:
    out = Snapshots()
    if job.refuse_mid_merge:
        for path in job.worktrees.values():
            unmerged = await unfinished_merge(Path(path))
            if unmerged is not None:
                out.unfinished[path] = unmerged
                return out
    author = None
    if job.author_name is not None and job.author_email is not None:
        author = Author(job.author_name, job.author_email)
    for repo_id, path in job.worktrees.items():
        head, commit = await snapshot_commit(Path(path), job.message, author)
        if job.adopt_branch is not None:
            await adopt_snapshot(Path(path), job.adopt_branch, head, commit)
        out.made[repo_id] = [head, commit]
    return out


@dataclass(slots=True)
class AdoptJob:
    worktrees: dict[str, str]
    branch: str
    #: ``Snapshots.made``.
    made: dict[str, list[str]]


@dataclass(slots=True)
class Adopted:
    pass


async def _adopt(_: Here, job: AdoptJob) -> Adopted:
    for repo_id, path in job.worktrees.items():
        head, commit = job.made[repo_id]
        await adopt_snapshot(Path(path), job.branch, head, commit)
    return Adopted()


@dataclass(slots=True)
class PrSyncJob:
    """The worktree side of syncing a run branch with its open pull request (the push itself
    is the API server's, with the run owner's credentials)."""

    worktrees: dict[str, str]
    #: The repository (``projects`` path) by id: where the base is fetched.
    repos: dict[str, str]
    branch: str
    message: str
    #: The pull request's base branch by repository id.
    bases: dict[str, str]


@dataclass(slots=True)
class PrSynced:
    #: The run branch's head by repository id (every repository, when nothing was refused).
    heads: dict[str, str] = field(default_factory=dict)
    #: New heads of the repositories rebased onto their moved base.
    rebased: dict[str, str] = field(default_factory=dict)
    onto: str | None = None
    refused: str | None = None


async def _pr_sync(_: Here, job: PrSyncJob) -> PrSynced:
    """Commit what is left, rebase onto the base if it moved on the remote. A conflict rebases
    nothing: ``refused`` says where it conflicts."""
    out = PrSynced()
    for repo_id, path in job.worktrees.items():
        worktree, repo_path = Path(path), Path(job.repos[repo_id])
        head, commit = await snapshot_commit(worktree, job.message)
        await adopt_snapshot(worktree, job.branch, head, commit)
        base = job.bases[repo_id]
        if await _base_moved(repo_path, worktree, base):
            try:
                out.rebased[repo_id] = await landing.rebase_branch(
                    worktree, f"refs/remotes/origin/{base}"
                )
                out.onto = base
            except Conflict as exc:
                out.refused = (
                    f"the pull request's base '{base}' moved and the run branch no longer "
                    f"rebases onto it ({exc.detail}); it needs a rebase: message the agent to "
                    f"merge origin/{base} and resolve the conflicts, or rebase by hand"
                )
                return out
        out.heads[repo_id] = (await git("rev-parse", "HEAD", cwd=worktree)).stdout.strip()
    return out


async def _base_moved(repo: Path, worktree: Path, base: str) -> bool:
    """Fetch ``base`` from origin; True when the run branch does not contain it any more.
    A fetch that fails (offline, no such branch) says no: the push then tells the truth."""
    spec = f"+refs/heads/{base}:refs/remotes/origin/{base}"
    fetched = await git("fetch", "--quiet", "origin", spec, cwd=repo, check=False, timeout=120)
    if fetched.returncode != 0:
        return False
    contained = await git(
        "merge-base",
        "--is-ancestor",
        f"refs/remotes/origin/{base}",
        "HEAD",
        cwd=worktree,
        check=False,
    )
    return contained.returncode != 0


# --- discard: the worktrees go ---------------------------------------------------------------


@dataclass(slots=True)
class RemoveJob:
    run_id: str
    script_timeout: float


@dataclass(slots=True)
class Removed:
    #: ``remove_run_worktrees``'s records: ``{repo_id, path, branch, branch_deleted}``.
    removed: list[dict[str, Any]] = field(default_factory=list)


async def _remove(here: Here, job: RemoveJob) -> Removed:
    """Every worktree of the run (cleanup scripts first, sandboxed as this host runs them)."""
    async with here.engine.connect() as conn:
        run = await runs.get(conn, job.run_id)
    records = await remove_run_worktrees(
        here.engine, run, here.writer, job.script_timeout, sandbox=await here.sandbox()
    )
    return Removed(records)


def _author(name: str | None, email: str | None) -> Author | None:
    return Author(name, email) if name is not None and email is not None else None


# --- the run branch on request: commit, rebase, an agent merge's merge ---------------------


@dataclass(slots=True)
class CommitJob:
    worktrees: dict[str, str]
    message: str
    author_name: str | None = None
    author_email: str | None = None


@dataclass(slots=True)
class Committed:
    #: The new commit by repository id (repositories with nothing to commit are left out).
    made: dict[str, str] = field(default_factory=dict)


async def _commit(_: Here, job: CommitJob) -> Committed:
    out = Committed()
    author = _author(job.author_name, job.author_email)
    for repo_id, path in job.worktrees.items():
        sha = await branches.commit_all(Path(path), job.message, author)
        if sha is not None:
            out.made[repo_id] = sha
    return out


@dataclass(slots=True)
class RebaseJob:
    worktrees: dict[str, str]
    #: What each repository's run branch is rebased onto (a branch or commit there).
    onto: dict[str, str]
    author_name: str | None = None
    author_email: str | None = None


@dataclass(slots=True)
class Rebased:
    heads: dict[str, str] = field(default_factory=dict)


async def _rebase(_: Here, job: RebaseJob) -> Rebased:
    """A conflict raises (``conflicts``) with that repository's branch as it was."""
    out = Rebased()
    author = _author(job.author_name, job.author_email)
    for repo_id, path in job.worktrees.items():
        out.heads[repo_id] = await landing.rebase_branch(Path(path), job.onto[repo_id], author)
    return out


@dataclass(slots=True)
class MergeInJob:
    """An agent merge: the worktree's state committed on the run branch, then the target
    merged into it, conflict markers left for the agent."""

    worktrees: dict[str, str]
    targets: dict[str, str]
    branch: str
    message: str
    author_name: str | None = None
    author_email: str | None = None


@dataclass(slots=True)
class MergedIn:
    #: Paths with conflict markers, every repository's.
    conflicted: list[str] = field(default_factory=list)
    #: Worktree path → paths in conflict, for a worktree already mid-merge (nothing was done).
    unfinished: dict[str, list[str]] = field(default_factory=dict)


async def _merge_in(_: Here, job: MergeInJob) -> MergedIn:
    out = MergedIn()
    for path in job.worktrees.values():
        unmerged = await unfinished_merge(Path(path))
        if unmerged is not None:
            out.unfinished[path] = unmerged
            return out
    author = _author(job.author_name, job.author_email)
    for repo_id, path in job.worktrees.items():
        worktree = Path(path)
        head, commit = await snapshot_commit(worktree, job.message, author)
        await adopt_snapshot(worktree, job.branch, head, commit)
        identity = await branches.identity_env(worktree, author)
        target = job.targets[repo_id]
        merged = await git(
            "merge", "--no-ff", "--no-edit", target, cwd=worktree, check=False, env=identity
        )
        if merged.returncode != 0:
            status = await git("diff", "--name-only", "--diff-filter=U", cwd=worktree)
            out.conflicted += status.stdout.splitlines()
    return out


# --- checkpoints: take one, restore one ----------------------------------------------------


@dataclass(slots=True)
class CheckpointJob:
    run_id: str
    worktrees: dict[str, str]
    kind: str
    description: str | None = None


@dataclass(slots=True)
class Checkpointed:
    #: The checkpoint as ``checkpointing.public`` gives it (its row and event are stored).
    checkpoint: dict[str, Any] = field(default_factory=dict)


async def _checkpoint_here(
    here: Here, run_id: str, worktrees: dict[str, str], kind: str, description: str | None
) -> dict[str, Any]:
    async with here.engine.connect() as conn:
        run = await runs.get(conn, run_id)
    return await take_checkpoint(
        here.engine, here.writer, {**run, "worktrees": worktrees}, kind, description
    )


async def _checkpoint(here: Here, job: CheckpointJob) -> Checkpointed:
    """Checkpointed by this process: the one that takes the run's turn-end checkpoints too (its
    per-run lock keeps the numbers apart)."""
    made = await _checkpoint_here(here, job.run_id, job.worktrees, job.kind, job.description)
    return Checkpointed(made)


@dataclass(slots=True)
class RestoreJob:
    run_id: str
    worktrees: dict[str, str]
    #: The checkpoint's commit by repository id.
    commits: dict[str, str]
    #: The undo checkpoint's description.
    description: str


@dataclass(slots=True)
class Restored:
    #: The checkpoint of the state before (the undo).
    undo: dict[str, Any] = field(default_factory=dict)
    #: The worktrees' diff stats against their base afterwards.
    stats: dict[str, int] = field(default_factory=dict)


async def _restore(here: Here, job: RestoreJob) -> Restored:
    """The present checkpointed first (the undo), then the files put back as the checkpoint
    has them (HEAD and the branch stay)."""
    undo = await _checkpoint_here(here, job.run_id, job.worktrees, "pre_restore", job.description)
    for repo_id, path in job.worktrees.items():
        if commit := job.commits.get(repo_id):
            await restore_checkpoint(Path(path), commit)
    async with here.engine.connect() as conn:
        bases = (await runs.get(conn, job.run_id))["base_commits"]
    diffs = await DIFF.run(here, DiffJob(job.worktrees, bases, "stats"))
    total = {"files": 0, "insertions": 0, "deletions": 0}
    for part in diffs.stats.values():
        total = {k: total[k] + part[k] for k in total}
    return Restored(undo, total)


SNAPSHOT = Op(
    "snapshot",
    SnapshotJob,
    Snapshots,
    _snapshot,
    "the commit of the run's worktrees",
    "land it (or open its pull request) again",
)
ADOPT = Op("adopt", AdoptJob, Adopted, _adopt, "the move of the run's branch", "land it again")
PR_SYNC = Op(
    "pr_sync",
    PrSyncJob,
    PrSynced,
    _pr_sync,
    "the commit (and rebase) of the run's worktrees for its pull request",
    "message the run (its next turn end pushes to the pull request)",
    timeout=600.0,
)
REMOVE = Op(
    "remove",
    RemoveJob,
    Removed,
    _remove,
    "the removal of the run's worktrees",
    "discard it again",
    timeout=1800.0,
)
COMMIT = Op(
    "commit", CommitJob, Committed, _commit, "the commit of the run's worktrees", "commit again"
)
REBASE = Op("rebase", RebaseJob, Rebased, _rebase, "the rebase of the run's branch", "rebase again")
MERGE_IN = Op(
    "merge_in",
    MergeInJob,
    MergedIn,
    _merge_in,
    "the merge of the target into the run's branch",
    "ask for the agent merge again",
    timeout=600.0,
)
CHECKPOINT = Op(
    "checkpoint",
    CheckpointJob,
    Checkpointed,
    _checkpoint,
    "the checkpoint of the run's worktrees",
    "take it again",
)
RESTORE = Op(
    "restore",
    RestoreJob,
    Restored,
    _restore,
    "the restore of the run's worktrees to a checkpoint",
    "restore it again",
    timeout=600.0,
)

#: Every acting operation, for the table a worker host runs them from by name.
WRITES: tuple[Op[Any, Any], ...] = (
    SNAPSHOT, ADOPT, PR_SYNC, REMOVE, COMMIT, REBASE, MERGE_IN, CHECKPOINT, RESTORE,
)  # fmt: skip
