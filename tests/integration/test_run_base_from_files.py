"""A new run's base commit in a project's repository (``source_ref`` HEAD, the default) is read
from the repository's files once git has found its work tree (``run_creation._base_commit``
through ``workspace.head_files``): no git process per run after the first, and still the
commit HEAD names at the request, a commit made just before included."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from sqlalchemy import text

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


async def test_a_head_naming_a_missing_commit_is_refused_at_post(
    sqlite_api: Api, git_repo: Path
) -> None:
    """A corrupt repository (its branch names a commit that is not there) gets git's 400 at
    ``POST``, as before HEAD was read from the files, not a run that fails in preparation."""
    api = sqlite_api
    scenario = {"scenario": {"steps": [{"say": "ok"}]}}
    body = {
        "prompt": "x",
        "repo_path": str(git_repo),
        "provider": "script",
        "agent_options": scenario,
    }
    checked = await api.post("/api/runs/validate", json=body)  # git finds the work tree
    assert checked.status_code == 200, checked.text
    (git_repo / ".git/refs/heads/main").write_text("0123456789abcdef" * 2 + "01234567\n")
    resp = await api.post("/api/runs", json=body)
    assert resp.status_code == 400, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert "'HEAD' does not name a commit" in resp.json()["detail"]
    async with api.services.engine.connect() as conn:
        assert (await conn.execute(text("SELECT COUNT(*) FROM runs"))).scalar() == 0
    assert not any(Path(api.services.settings.worktree_root).iterdir())
