"""A new run's base commit in a project's repository (``source_ref`` HEAD, the default) is read
from the repository's files once git has found its work tree (``run_creation._base_commit``
through ``workspace.head_files``): no git process per run after the first, and still the
commit HEAD names at the request, a commit made just before included."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import Api

pytestmark = pytest.mark.anyio


def _head(repo: Path) -> str:
    done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True)
    return done.stdout.strip()


async def test_a_project_runs_base_is_head_read_without_git_after_the_first(
    sqlite_api: Api, git_repo: Path, git_processes: list[tuple[str, ...]]
) -> None:
    api = sqlite_api
    made = await api.post("/api/projects", json={"name": "app", "repos": [{"path": str(git_repo)}]})
    assert made.status_code == 201, made.text
    project, repo_id = made.json()["id"], made.json()["repos"][0]["id"]
    body = {"prompt": "x", "provider": "claude-code", "project_id": project}

    async def base() -> str:
        checked = await api.post("/api/runs/validate", json=body)
        assert checked.status_code == 200, checked.text
        found: str = checked.json()["base_commits"][repo_id]
        return found

    assert await base() == _head(git_repo)
    before = len(git_processes)
    for i in range(2):
        (git_repo / f"f{i}.txt").write_text(f"{i}\n")
        subprocess.run(["git", "add", "."], cwd=git_repo, check=True)
        subprocess.run(["git", "commit", "-qm", f"c{i}"], cwd=git_repo, check=True)
        assert await base() == _head(git_repo)  # the commit just made
    assert git_processes[before:] == []
    other = await api.post("/api/runs/validate", json={**body, "source_ref": "HEAD~1"})
    assert other.json()["base_commits"][repo_id] != _head(git_repo)
    assert len(git_processes) == before + 1  # another ref: git, as before
