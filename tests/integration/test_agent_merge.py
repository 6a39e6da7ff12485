"""``agent_merge`` from one click runs one turn, and a worktree it leaves mid-merge is refused
truthfully (not as a conflict check that "changed nothing"). Real git, the script agent, the
API over ASGI on SQLite.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api

pytestmark = pytest.mark.anyio


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout.strip()


async def test_agent_merge_runs_one_turn_and_an_unfinished_merge_is_not_landed(
    sqlite_api: Api, git_repo: Path
) -> None:
    api = sqlite_api
    steps: list[dict[str, Any]] = [{"write": {"path": "README.md", "content": "agent\n"}}]
    body = {
        "prompt": "Change the README",
        "repo_path": str(git_repo),
        "provider": "script",
        "agent_options": {"scenario": {"steps": steps}, "permission_mode": "auto"},
    }
    run = (await api.post("/api/runs", json=body)).json()
    await api.wait_status(run["id"], "review")
    (git_repo / "README.md").write_text("user\n")
    git(git_repo, "commit", "-qam", "user change")

    queued = await api.post(f"/api/runs/{run['id']}/resolve", json={"action": "agent_merge"})
    assert queued.status_code == 200, queued.text
    done = await api.wait_status(run["id"], "review")
    started = (await api.get(f"/api/runs/{run['id']}/events?types=turn.started")).json()["data"]
    sources = [e["data"]["source"] for e in started]
    assert sources == ["create", "agent_merge"]  # one click, one turn (it used to run twice)
    assert done["turns"] == 2

    # The script agent does not finish the merge: the worktree is left mid-merge.
    (path,) = done["worktrees"].values()
    tree = Path(path)
    assert "<<<<<<<" in (tree / "README.md").read_text()
    main_before = git(git_repo, "rev-parse", "main")
    for action in ("merge", "squash", "agent_merge"):
        refused = await api.post(f"/api/runs/{run['id']}/resolve", json={"action": action})
        assert refused.status_code == 409, refused.text
        problem = refused.json()
        assert problem["unfinished_merge"] is True and problem["conflicts"] == ["README.md"]
        assert "in the middle of a merge with conflicts in README.md" in problem["detail"]
        assert str(tree) in problem["detail"] and "nothing was changed" not in problem["detail"]
    assert git(git_repo, "rev-parse", "main") == main_before
    assert (await api.get(f"/api/runs/{run['id']}")).json()["status"] == "review"

    # Finished by hand, it lands.
    (tree / "README.md").write_text("agent and user\n")
    git(tree, "commit", "-qam", "Finish the merge")
    landed = await api.post(f"/api/runs/{run['id']}/resolve", json={"action": "squash"})
    assert landed.status_code == 200, landed.text
    assert (git_repo / "README.md").read_text() == "agent and user\n"
