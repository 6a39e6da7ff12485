"""Diff statistics of a worktree against its base commit, untracked files included.

A throw-away index (``GIT_INDEX_FILE``) holds the snapshot, so neither the run branch nor the
worktree's own index is touched.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from codeyard.workspace.git import git

_SHORTSTAT = re.compile(
    r"(\d+) files? changed(?:, (\d+) insertions?\(\+\))?(?:, (\d+) deletions?\(-\))?"
)


async def diff_stats(worktree: Path, base_commit: str) -> dict[str, int]:
    """``{files, insertions, deletions}`` of everything in ``worktree`` against ``base_commit``."""
    with tempfile.TemporaryDirectory(prefix="codeyard-index-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        await git("read-tree", "HEAD", cwd=worktree, env=env)
        await git("add", "-A", cwd=worktree, env=env)
        out = (
            await git("diff", "--cached", "--shortstat", base_commit, cwd=worktree, env=env)
        ).stdout
    match = _SHORTSTAT.search(out)
    if match is None:
        return {"files": 0, "insertions": 0, "deletions": 0}
    files, ins, dels = (int(g) if g else 0 for g in match.groups())
    return {"files": files, "insertions": ins, "deletions": dels}
