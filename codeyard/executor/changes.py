"""Noticing what a tool call changed, for every provider: ``file.changed`` events and stats.

After a tool call that may write, the worktree is snapshotted (a tree id, via a throw-away
index) and compared with the previous snapshot. Agents need not report their own edits.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from codeyard.domain.events import FileChange, FileChanged, NewEvent
from codeyard.workspace.diff import diff_between, snapshot_tree
from codeyard.workspace.git import both, git

#: Tool kinds after which the worktree may have changed.
WRITING_KINDS = frozenset({"write", "edit", "bash", "other", "mcp", "task"})
_CHANGE: dict[str, FileChange] = {"A": "added", "D": "deleted"}


async def changed_paths(repo: Path, old_tree: str, new_tree: str) -> list[tuple[str, FileChange]]:
    """``(path, change)`` between two trees, cheaply (names only, no patches, no renames)."""
    out = (
        await git(
            "diff-tree", "-r", "-z", "--no-renames", "--name-status", old_tree, new_tree, cwd=repo
        )
    ).stdout
    fields = out.split("\0")
    return [
        (fields[i + 1], _CHANGE.get(fields[i], "modified"))
        for i in range(0, len(fields) - 1, 2)
        if fields[i + 1]
    ]


class ChangeTracker:
    def __init__(self, worktrees: dict[str, str], base_commits: dict[str, str]) -> None:
        self._worktrees = {k: Path(v) for k, v in worktrees.items()}
        self._base = base_commits
        self._trees: dict[str, str] = {}
        self._baseline: asyncio.Future[None] | None = None

    def begin(self) -> None:
        """Start the baseline snapshot now, while the turn's options are still being loaded
        and the agent starts (its git processes then overlap that work instead of coming
        before the spawn). Only before the agent starts: the baseline must not contain the
        agent's own changes. An agent changes nothing before its first tool call, which comes
        after its start-up and a model call (hundreds of ms; the snapshot takes a few), and a
        tool call waits for the baseline before it is decided (:meth:`start`)."""
        if self._baseline is None:
            self._baseline = asyncio.ensure_future(self._snapshot_all())
            # Seen here too, for a turn abandoned before it awaited the baseline: no
            # "exception was never retrieved" from a git failure nobody is waiting for.
            self._baseline.add_done_callback(lambda f: f.cancelled() or f.exception())

    async def _snapshot_all(self) -> None:
        for repo_id, path in self._worktrees.items():
            self._trees[repo_id] = await snapshot_tree(path)

    async def start(self) -> None:
        """The baseline, taken (or finished, after :meth:`begin`): before a tool call is
        decided, and before the changes after a tool are looked at."""
        self.begin()
        assert self._baseline is not None
        await self._baseline

    async def abandon(self) -> None:
        """The turn ends before its agent started: let a begun baseline finish quietly (git
        runs are not cancelled half-way; their processes are reaped)."""
        if self._baseline is not None:
            with contextlib.suppress(Exception):
                await self._baseline

    async def after_tool(self) -> tuple[list[NewEvent], dict[str, int] | None]:
        """Events for files changed since the last look, and fresh diff stats (None: no change)."""
        await self.start()
        events: list[NewEvent] = []
        stats_of: dict[str, dict[str, int]] = {}
        for repo_id, path in self._worktrees.items():
            tree = await snapshot_tree(path)
            previous = self._trees.get(repo_id)
            self._trees[repo_id] = tree
            if previous is None or previous == tree:
                continue
            # What changed and the stats at once: independent git processes.
            found, stats_of[repo_id] = await both(
                changed_paths(path, previous, tree),
                diff_between(path, self._base[repo_id], tree, "stats"),
            )
            for changed, change in found:
                several = len(self._worktrees) > 1
                event = FileChanged(
                    path=changed, change=change, repo_id=repo_id if several else None
                )
                events.append(event)
        if not events:
            return [], None
        # Stats of the trees just taken: a second snapshot would cost three more git processes
        # between the agent's tool result and its storage (bench/approval_latency.py).
        total = {"files": 0, "insertions": 0, "deletions": 0}
        for repo_id, path in self._worktrees.items():
            if repo_id in stats_of:
                stats = stats_of[repo_id]
            else:
                stats = await diff_between(path, self._base[repo_id], self._trees[repo_id], "stats")
            total = {k: total[k] + stats[k] for k in total}
        return events, total
