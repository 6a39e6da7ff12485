"""A landing a crash cut off before it was recorded is found in git, not made twice (issue 12).

Real git: a repository, a run branch with a change, a real landing by ``landing.land_all``; then
the check a repeated landing makes (``landing_once._already_landed``) against the recorded
intent. The retried landing snapshots the worktree again (a new commit object with the same
tree), as it does after a crash.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from codeyard.run_workspace.landing_once import _already_landed
from codeyard.workspace import landing
from tests.conftest import make_repo

pytestmark = pytest.mark.anyio


def git(repo: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "T",
        "GIT_AUTHOR_EMAIL": "t@example.invalid",
        "GIT_COMMITTER_NAME": "T",
        "GIT_COMMITTER_EMAIL": "t@example.invalid",
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def snapshot(repo: Path, message: str) -> str:
    """The run's work as a commit on top of its branch (what landing snapshots), made anew."""
    tree = git(repo, "rev-parse", "work^{tree}")
    return git(repo, "commit-tree", tree, "-p", "work^", "-m", message)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = make_repo(tmp_path / "repo")
    git(repo, "checkout", "-q", "-b", "work")
    (repo / "feature.txt").write_text("feature\n")
    git(repo, "add", "feature.txt")
    git(repo, "commit", "-q", "-m", "feature")
    git(repo, "checkout", "-q", "main")
    (repo / "other.txt").write_text("moved on\n")  # the target moved: no fast-forward
    git(repo, "add", "other.txt")
    git(repo, "commit", "-q", "-m", "other")
    return repo


def run_with(strategy: str, before: str) -> dict[str, Any]:
    intent = {"strategy": strategy, "repos": {"repo_1": {"target": "main", "before": before}}}
    return {"id": "run_1", "workspace_intent": {"landing": intent}}


@pytest.mark.parametrize("strategy", ["merge", "squash", "rebase"])
async def test_a_landing_cut_off_before_its_record_is_found_not_repeated(
    repo: Path, strategy: landing.Strategy
) -> None:
    before = git(repo, "rev-parse", "main")
    first = landing.LandingRequest(repo, "main", snapshot(repo, "one"), strategy, "Land it")
    (plan,) = await landing.land_all([first])
    assert plan is not None
    landed_at = git(repo, "rev-parse", "main")

    retry = landing.LandingRequest(repo, "main", snapshot(repo, "two"), strategy, "Land it")
    assert retry.source != first.source  # a new snapshot commit, the same tree
    found = await _already_landed(run_with(strategy, before), ["repo_1"], [retry], strategy)
    assert found is not None
    (again,) = found
    assert again is not None
    assert (again.old_commit, again.new_commit) == (before, landed_at)
    assert git(repo, "rev-parse", "main") == landed_at  # nothing moved
    assert git(repo, "show", "main:feature.txt") == "feature"


async def test_an_unmoved_or_elsewhere_moved_target_is_landed_normally(repo: Path) -> None:
    before = git(repo, "rev-parse", "main")
    request = landing.LandingRequest(repo, "main", snapshot(repo, "one"), "squash", "Land it")
    run = run_with("squash", before)
    assert await _already_landed(run, ["repo_1"], [request], "squash") is None  # not landed
    (repo / "unrelated.txt").write_text("someone else\n")
    git(repo, "add", "unrelated.txt")
    git(repo, "commit", "-q", "-m", "someone else")
    assert await _already_landed(run, ["repo_1"], [request], "squash") is None  # not ours
    assert await _already_landed(run, ["repo_1"], [request], "merge") is None  # other strategy
    no_intent = {"id": "run_1", "workspace_intent": None}
    assert await _already_landed(no_intent, ["repo_1"], [request], "squash") is None
