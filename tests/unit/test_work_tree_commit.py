"""A new run's repository and base commit from one git process (``git.work_tree_commit``, used
by ``POST /api/runs`` with a ``repo_path``); None whenever the two separate look-ups would say
what is wrong (real git)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from codeyard.workspace.git import resolve_commit, work_tree_commit, work_tree_top
from tests.conftest import make_repo

pytestmark = pytest.mark.anyio


async def test_the_top_and_the_commit_are_those_the_two_look_ups_give(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "app", {"src/a.py": "x = 1\n"})
    subprocess.run(["git", "tag", "v1"], cwd=repo, check=True)
    for where in (repo, repo / "src"):
        for ref in ("HEAD", "main", "v1"):
            found = await work_tree_commit(where, ref)
            assert found == (await work_tree_top(where), await resolve_commit(repo, ref))
            assert found is not None and found[0] == repo.resolve()


@pytest.mark.parametrize("ref", ["nope", "main@{upstream}", "-h", "--all", "a\nb", ""])
async def test_a_ref_that_names_no_commit_gives_nothing(tmp_path: Path, ref: str) -> None:
    repo = make_repo(tmp_path / "app")
    assert await work_tree_commit(repo, ref) is None
    assert await resolve_commit(repo, ref) is None  # which the caller then says


async def test_a_path_that_is_no_work_tree_gives_nothing(tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    repo = make_repo(tmp_path / "app")
    for path in (tmp_path / "plain", tmp_path / "missing", repo / ".git", repo / "README.md"):
        assert await work_tree_commit(path, "HEAD") is None
