"""The git processes of one scripted turn on a real repository: the baseline snapshot, a tool
call that writes (snapshot, what changed, stats), and the turn-end checkpoint (snapshot, commit,
ref, stats). The checkpoint's stats are the tool call's when its snapshot is the same tree,
without a second ``diff-tree --shortstat`` (bench/agents_scale.py: two per run), and a first
checkpoint's parent is HEAD as ``commit-tree`` resolves it, without a ``rev-parse`` (a later one
reads HEAD only when its state may be the previous checkpoint's)."""

from __future__ import annotations

import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest

from codeyard.executor import changes
from codeyard.executor.changes import ChangeTracker
from codeyard.workspace import checkpoints, diff
from codeyard.workspace import git as git_module
from codeyard.workspace.checkpoints import create_checkpoint_with_stats
from codeyard.workspace.diff import diff_between, diff_stats

pytestmark = pytest.mark.anyio


def _head(repo: Path) -> str:
    out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, check=True, capture_output=True)
    return out.stdout.decode().strip()


def _command(args: tuple[str, ...]) -> str:
    """``diff-tree --shortstat`` for ``-c k=v ... diff-tree ... --shortstat ...``."""
    rest = list(args)
    while rest[:1] == ["-c"]:
        rest = rest[2:]
    flags = [a for a in ("--shortstat", "--name-status") if a in rest]
    return " ".join([rest[0], *flags, *(rest[1:2] if rest[0] == "add" else [])])


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each git process the turn's modules start, by command (they import ``git`` by name)."""
    seen: list[str] = []
    real = git_module.git

    async def counting(*args: str, **kwargs: Any) -> git_module.GitResult:
        seen.append(_command(args))
        return await real(*args, **kwargs)

    for module in (diff, changes, checkpoints):
        monkeypatch.setattr(module, "git", counting)
    return seen


async def test_a_turn_asks_for_the_stats_of_one_pair_of_trees_once(
    git_repo: Path, started: list[str]
) -> None:
    base = _head(git_repo)
    tracker = ChangeTracker({"r": str(git_repo)}, {"r": base})
    with anyio.fail_after(30):
        await tracker.start()
        (git_repo / "README.md").write_text("# edited by the agent\nand a line more\n")
        _, after_tool = await tracker.after_tool()
        sha, at_end = await create_checkpoint_with_stats(
            git_repo, "refs/codeyard/run_x/1", "Codeyard checkpoint 1", base
        )
    assert after_tool == at_end == {"files": 1, "insertions": 2, "deletions": 1}
    assert Counter(started) == {
        "add -A": 3,  # baseline, after the tool call, the checkpoint
        "write-tree": 3,
        "diff-tree --name-status": 1,
        "diff-tree --shortstat": 1,  # was 2: the checkpoint asked again for the same trees
        "commit-tree": 1,  # no rev-parse: its -p HEAD is the parent (was one rev-parse)
        "update-ref": 1,
    }
    assert sha != base  # a commit was made (its content: test_checkpoints)
    assert _head(git_repo) == base == _rev(git_repo, f"{sha}^")  # on HEAD, which did not move


def _rev(repo: Path, rev: str) -> str:
    out = subprocess.run(["git", "rev-parse", rev], cwd=repo, check=True, capture_output=True)
    return out.stdout.decode().strip()


async def test_a_later_checkpoint_reads_head_only_for_the_previous_state(
    git_repo: Path, started: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Turn 2 on: a state whose tree is not the previous checkpoint's is a new commit on HEAD,
    whatever HEAD is (the previous tree is known here: this process made it); the same tree
    needs HEAD to tell whether the previous commit is this state (one ``rev-parse``), and so
    does a previous commit this process does not know (a restart)."""
    base = _head(git_repo)
    ref = "refs/codeyard/run_x"
    with anyio.fail_after(30):
        first, _ = await create_checkpoint_with_stats(git_repo, f"{ref}/1", "1", base)
        (git_repo / "README.md").write_text("changed in turn 2\n")
        second, _ = await create_checkpoint_with_stats(git_repo, f"{ref}/2", "2", base, first)
        assert started.count("rev-parse") == 0  # was 1 (and 1 for the first)
        same, _ = await create_checkpoint_with_stats(git_repo, f"{ref}/3", "3", base, second)
        assert started.count("rev-parse") == 1
        monkeypatch.setattr(checkpoints, "_tree_of", type(checkpoints._tree_of)())  # a restart
        (git_repo / "README.md").write_text("changed in turn 4\n")
        fourth, _ = await create_checkpoint_with_stats(git_repo, f"{ref}/4", "4", base, same)
        assert started.count("rev-parse") == 2
    assert second != first and same == second and fourth not in (first, second)
    for commit in (first, second, fourth):
        assert _rev(git_repo, f"{commit}^") == base
    assert _rev(git_repo, f"{second}^{{tree}}") != _rev(git_repo, f"{fourth}^{{tree}}")


async def test_a_changed_tree_is_asked_again_and_names_always_are(
    git_repo: Path, started: list[str]
) -> None:
    base = _head(git_repo)
    with anyio.fail_after(30):
        first = await diff_stats(git_repo, base)
        (git_repo / "new.txt").write_text("one\ntwo\n")
        second = await diff_stats(git_repo, base)
        again = await diff_stats(git_repo, base)  # same tree: kept
        by_name = await diff_between(git_repo, "HEAD", "HEAD", "stats")
        by_name_again = await diff_between(git_repo, "HEAD", "HEAD", "stats")
    assert first == {"files": 0, "insertions": 0, "deletions": 0}
    assert second == again == {"files": 1, "insertions": 2, "deletions": 0}
    assert by_name == by_name_again == {"files": 0, "insertions": 0, "deletions": 0}
    # first, second (a new tree), then HEAD..HEAD twice: a name is never kept
    assert started.count("diff-tree --shortstat") == 4


async def test_kept_stats_are_copies(git_repo: Path) -> None:
    base = _head(git_repo)
    (git_repo / "new.txt").write_text("one\n")
    with anyio.fail_after(30):
        first = await diff_stats(git_repo, base)
        first["files"] = 99  # a caller adding into its answer changes no later answer
        second = await diff_stats(git_repo, base)
    assert second == {"files": 1, "insertions": 1, "deletions": 0}
