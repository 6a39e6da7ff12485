"""Noticing what a tool call changed, for every provider: ``file.changed`` events and stats.

After a tool call that may write, the worktree is snapshotted (a tree id, via a throw-away
index) and compared with the previous snapshot. Agents need not report their own edits.
"""

from __future__ import annotations

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

    async def start(self) -> None:
        for repo_id, path in self._worktrees.items():
            self._trees[repo_id] = await snapshot_tree(path)

    async def after_tool(self) -> tuple[list[NewEvent], dict[str, int] | None]:
        """Events for files changed since the last look, and fresh diff stats (None: no change)."""
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
