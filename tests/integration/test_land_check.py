"""``GET /api/runs/{run}/land-check`` (issue 14): before landing, the API names conflicts and the
user's own checkouts of the target branch, and the question to ask. Real git, real SQLite."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api

pytestmark = pytest.mark.anyio


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


async def finished(api: Api, repo: Path, *steps: dict[str, Any]) -> dict[str, Any]:
    body = {
        "prompt": "Write",
        "repo_path": str(repo),
        "provider": "script",
        "agent_options": {"scenario": {"steps": list(steps)}},
    }
    resp = await api.post("/api/runs", json=body)
    assert resp.status_code == 201, resp.text
    return await api.wait_status(resp.json()["id"], "review")


async def test_land_check_names_the_checked_out_target_and_asks(api: Api, git_repo: Path) -> None:
    run = await finished(api, git_repo, {"write": {"path": "new.txt", "content": "hi\n"}})
    git(git_repo, "branch", "side")
    before = git(git_repo, "rev-parse", "main", "side")
    url = f"/api/runs/{run['id']}/land-check"
    body = (await api.get(url)).json()
    (repo,) = body["repos"]
    assert repo["target_branch"] == "main" and repo["conflicts"] == []
    assert repo["nothing_to_land"] is False
    assert [Path(p).resolve() for p in repo["checked_out_in"]] == [git_repo.resolve()]
    assert body["confirm"] and "'main' is checked out in" in body["confirm"]
    assert str(git_repo.resolve()) in body["confirm"] or str(git_repo) in body["confirm"]
    # A branch nobody has checked out needs no question.
    side = (await api.get(url, params={"target_branch": "side"})).json()
    assert side["confirm"] is None and side["repos"][0]["checked_out_in"] == []
    # Nothing moved: not the branches, not the run's branch, not the files.
    assert git(git_repo, "rev-parse", "main", "side") == before
    assert not (git_repo / "new.txt").exists()
    missing = await api.get(url, params={"target_branch": "nope"})
    assert missing.status_code == 400 and "nope" in missing.json()["detail"]


async def test_land_check_lists_conflicts_and_nothing_to_land(api: Api, git_repo: Path) -> None:
    run = await finished(api, git_repo, {"write": {"path": "README.md", "content": "theirs\n"}})
    (git_repo / "README.md").write_text("ours\n")
    git(git_repo, "commit", "-qam", "ours")
    body = (await api.get(f"/api/runs/{run['id']}/land-check")).json()
    assert body["conflicts"] is True and body["repos"][0]["conflicts"] == ["README.md"]
    empty = await finished(api, git_repo)
    nothing = (await api.get(f"/api/runs/{empty['id']}/land-check")).json()
    assert nothing["repos"][0]["nothing_to_land"] is True
