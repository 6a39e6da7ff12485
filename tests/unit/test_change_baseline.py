"""The change tracker's baseline is begun early (overlapping the turn's option loading) and
taken once: what the agent changes afterwards is reported, never folded into the baseline.
Real git repositories."""

from __future__ import annotations

import subprocess
from pathlib import Path

import anyio
import pytest

from codeyard.domain.events import FileChanged
from codeyard.executor.changes import ChangeTracker
from codeyard.workspace.git import GitError

pytestmark = pytest.mark.anyio


def _head(repo: Path) -> str:
    out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True)
    return out.stdout.decode().strip()


async def test_a_begun_baseline_is_the_one_start_returns_and_later_edits_are_changes(
    git_repo: Path,
) -> None:
    tracker = ChangeTracker({"r": str(git_repo)}, {"r": _head(git_repo)})
    with anyio.fail_after(30):
        tracker.begin()
        await tracker.start()  # the agent would start after this
        (git_repo / "README.md").write_text("# edited by the agent\n")
        await tracker.start()  # a second call does not take a new baseline
        events, stats = await tracker.after_tool()
    assert all(isinstance(e, FileChanged) for e in events)
    assert [(e.path, e.change) for e in events if isinstance(e, FileChanged)] == [
        ("README.md", "modified")
    ]
    assert stats == {"files": 1, "insertions": 1, "deletions": 1}


async def test_an_abandoned_baseline_swallows_its_failure_and_start_still_reports_it(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "gone"
    tracker = ChangeTracker({"r": str(missing)}, {"r": "0" * 40})
    with anyio.fail_after(30):
        tracker.begin()
        await tracker.abandon()  # the turn failed before its agent started: no error
        with pytest.raises(GitError):
            await tracker.start()  # a turn that goes on anyway sees the failure
