"""Preparing a new run: no lookup of its branch beyond ``create_worktree``'s own, and a branch of
that name that already exists is refused and left as it was; the run's port lease is taken
beside the git work, and a run whose preparation failed holds none.

Real parts: the app over httpx, SQLite, real git, the script agent and its real bash.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from codeyard.domain.ids import slugify
from codeyard.preview import leases
from codeyard.run_workspace import prepare
from codeyard.workspace.git import git
from tests.conftest import Api, make_repo

pytestmark = pytest.mark.anyio

TITLE = "Prepare me"


async def _run(api: Api, repo: Path, steps: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body = {
        "prompt": TITLE,
        "title": TITLE,
        "repo_path": str(repo),
        "provider": "script",
        "agent_options": {"scenario": {"steps": steps or [{"say": "hi"}]}},
    }
    resp = await api.post("/api/runs", json=body)
    assert resp.status_code == 201, resp.text
    created: dict[str, Any] = resp.json()
    return created


async def test_a_new_runs_branch_is_looked_up_once(
    sqlite_api: Api, git_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    looked_up: list[str] = []
    real = prepare.resolve_commit

    async def spy(repo: Path, ref: str) -> str | None:
        looked_up.append(ref)
        return await real(repo, ref)

    monkeypatch.setattr(prepare, "resolve_commit", spy)
    run = await _run(sqlite_api, git_repo)
    done = await sqlite_api.wait_status(run["id"], "review", "failed", timeout=60)
    assert done["status"] == "review", done
    assert done["branch"].startswith("codeyard/")
    assert looked_up == []  # create_worktree's own check is the only one


async def test_an_existing_branch_of_the_new_runs_name_is_refused_and_kept(
    sqlite_api: Api, git_repo: Path
) -> None:
    first = await _run(sqlite_api, git_repo)
    await sqlite_api.wait_status(first["id"], "review", "failed", timeout=60)
    # The next run's branch name is taken already (by hand, or a leftover of another server).
    taken = f"codeyard/{first['number'] + 1}-{slugify(TITLE)}"
    await git("branch", taken, cwd=git_repo)
    before = (await git("rev-parse", taken, cwd=git_repo)).stdout
    second = await _run(sqlite_api, git_repo)
    assert second["number"] == first["number"] + 1
    done = await sqlite_api.wait_status(second["id"], "review", "failed", timeout=60)
    assert done["status"] == "failed", done
    assert "already exists" in (done["status_reason"] or ""), done
    assert (await git("rev-parse", taken, cwd=git_repo)).stdout == before


async def _lease(api: Api, run_id: str) -> leases.Lease | None:
    async with api.services.engine.connect() as conn:
        return await leases.find(conn, run_id)


async def test_the_agent_gets_the_lease_taken_while_it_was_prepared(
    sqlite_api: Api, git_repo: Path
) -> None:
    run = await _run(sqlite_api, git_repo, [{"bash": "echo $PORT > .port"}])
    done = await sqlite_api.wait_status(run["id"], "review", "failed", timeout=60)
    assert done["status"] == "review", done
    lease = await _lease(sqlite_api, run["id"])
    assert lease is not None
    (worktree,) = done["worktrees"].values()
    assert (Path(worktree) / ".port").read_text().strip() == str(lease.base_port)


async def test_a_run_whose_preparation_failed_holds_no_lease(
    sqlite_api: Api, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "svc", {"README.md": "# svc\n"})
    api = sqlite_api
    project = await api.post("/api/projects", json={"name": "svc", "repos": [{"path": str(repo)}]})
    repo_id = project.json()["repos"][0]["id"]
    patched = await api.request("PATCH", f"/api/repos/{repo_id}", json={"setup_script": "exit 3"})
    assert patched.status_code == 200, patched.text
    run = await _run(api, repo)
    done = await api.wait_status(run["id"], "review", "failed", timeout=60)
    assert done["status"] == "failed", done
    assert "Setup script failed" in (done["status_reason"] or ""), done
    assert await _lease(api, run["id"]) is None
