"""Reading a run's worktrees where they are: the review's diff and the file browser.

Its own module because nothing here changes a worktree, a branch or a stored row: the diff
snapshots the live worktree into a tree object only to compare it, the browser lists and reads
files. Each operation is an ``Op`` that ``worktree_dispatch.in_worktrees`` runs in process or
on the run's worker host; what changes worktrees is ``worktree_writes``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from codeyard.domain.errors import Conflict
from codeyard.run_workspace.worktree_dispatch import Here, Op
from codeyard.workspace import browse
from codeyard.workspace.diff import diff_between, snapshot_tree

__all__ = [
    "DIFF",
    "LIST",
    "READ",
    "READS",
    "BrowseJob",
    "Browsed",
    "DiffJob",
    "Diffs",
]


# --- the review's diff ---------------------------------------------------------------------


@dataclass(slots=True)
class DiffJob:
    #: Worktree path by repository id.
    worktrees: dict[str, str]
    #: The commit each worktree is compared with (its base, or a checkpoint's commit).
    against: dict[str, str]
    fmt: Literal["text", "json", "stats"]
    paths: list[str] | None = None
    #: From the worktree to ``against`` (what restoring it would do) instead of the other way.
    reverse: bool = False


@dataclass(slots=True)
class Diffs:
    """Per repository id: patch text, files (``diff.DiffFile``) or stats, as ``fmt`` asked."""

    texts: dict[str, str] = field(default_factory=dict)
    files: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    stats: dict[str, dict[str, int]] = field(default_factory=dict)


async def _diff(_: Here, job: DiffJob) -> Diffs:
    out = Diffs()
    for repo_id, path in job.worktrees.items():
        worktree = Path(path)
        a, b = job.against[repo_id], await snapshot_tree(worktree)
        if job.reverse:
            a, b = b, a
        if job.fmt == "text":
            out.texts[repo_id] = await diff_between(worktree, a, b, "text", job.paths)
        elif job.fmt == "json":
            files = await diff_between(worktree, a, b, "json", job.paths)
            out.files[repo_id] = [dict(f) for f in files]
        else:
            out.stats[repo_id] = await diff_between(worktree, a, b, "stats", job.paths)
    return out


# --- the file browser: list a directory, read a file ---------------------------------------


@dataclass(slots=True)
class BrowseJob:
    #: The one worktree browsed, by its repository id. Paths are resolved inside it.
    worktrees: dict[str, str]
    path: str
    depth: int = 1
    truncate: bool = False


@dataclass(slots=True)
class Browsed:
    #: ``browse.list_tree``'s listing or ``browse.read_file``'s file.
    found: dict[str, Any] = field(default_factory=dict)


async def _root(job: BrowseJob) -> Path:
    [path] = job.worktrees.values()
    root = Path(path)
    if not await asyncio.to_thread(root.is_dir):
        raise Conflict(
            f"The worktree {path} is gone (discard, delete or retention removed it): there is "
            "no worktree to browse."
        )
    return root


async def _list(_: Here, job: BrowseJob) -> Browsed:
    root = await _root(job)
    return Browsed(await asyncio.to_thread(browse.list_tree, root, job.path, job.depth))


async def _read(_: Here, job: BrowseJob) -> Browsed:
    root = await _root(job)
    read = await asyncio.to_thread(browse.read_file, root, job.path, truncate=job.truncate)
    return Browsed(read)


DIFF = Op("diff", DiffJob, Diffs, _diff, "the diff of the run's worktrees", "ask again")
LIST = Op(
    "list",
    BrowseJob,
    Browsed,
    _list,
    "the listing of the run's worktree",
    "ask again",
    timeout=120.0,
)
READ = Op(
    "read",
    BrowseJob,
    Browsed,
    _read,
    "the read of a file in the run's worktree",
    "ask again",
    timeout=120.0,
)
#: Every reading operation, for the table a worker host runs them from by name.
READS: tuple[Op[Any, Any], ...] = (DIFF, LIST, READ)
