"""Fencing of side effects no transaction can take back (issue 16): a landing decided on a run
an attempt has since taken moves no branch, and a host that lost its run pushes no checkpoint
to the shared remote. Real app on SQLite, real git (the shared remote is a bare repository).

The race is staged by moving the run's attempt between the read and the act, as another host
taking the run over does (``runs.begin_attempt``).
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from codeyard.services import resolution
from codeyard.store import checkpoints, fencing, projects, runs
from codeyard.temporal import failover
from tests.conftest import Api

pytestmark = pytest.mark.anyio


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


async def _reviewed_run(api: Api, repo: Path) -> dict[str, Any]:
    body = {
        "prompt": "write a file",
        "repo_path": str(repo),
        "provider": "script",
        "agent_options": {"scenario": {"steps": [{"write": {"path": "f.txt", "content": "x"}}]}},
    }
    resp = await api.post("/api/runs", json=body)
    assert resp.status_code == 201, resp.text
    await api.wait_status(resp.json()["id"], "review")
    async with api.services.engine.connect() as conn:
        return await runs.get(conn, resp.json()["id"])


async def test_a_landing_decided_on_a_stale_attempt_moves_nothing(
    sqlite_api: Api, git_repo: Path
) -> None:
    api = sqlite_api
    run = await _reviewed_run(api, git_repo)  # read on attempt 1
    async with api.services.engine.connect() as conn:
        repos = {r["id"]: r for r in await projects.repos_of(conn, run["project_id"])}
    main_before = _git(git_repo, "rev-parse", "main")
    # Meanwhile another host took the run (a queued message started a turn there).
    await api.services.writer.run(lambda tx: runs.begin_attempt(tx, run["id"]))

    with fencing.acting_for(run), pytest.raises(fencing.StaleAttempt):
        await resolution._land(api.services, run, repos, "merge", {})

    assert _git(git_repo, "rev-parse", "main") == main_before  # no target moved
    after = (await api.get(f"/api/runs/{run['id']}")).json()
    assert after["status"] == "review" and after["resolution"] is None
    events = (await api.get(f"/api/runs/{run['id']}/events")).json()
    types = [e["type"] for e in events.get("data", events)]
    assert "git.merged" not in types

    # The same landing on a fresh read lands: the fence only refuses the stale one.
    resp = await api.post(f"/api/runs/{run['id']}/resolve", json={"action": "merge"})
    assert resp.status_code == 200, resp.text
    assert _git(git_repo, "rev-parse", "main") != main_before


async def test_a_host_that_lost_its_run_pushes_no_checkpoint(
    sqlite_api: Api, git_repo: Path, tmp_path: Path
) -> None:
    api = sqlite_api
    engine, writer = api.services.engine, api.services.writer
    run = await _reviewed_run(api, git_repo)
    async with engine.connect() as conn:
        (made,) = await checkpoints.of_run(conn, run["id"])
    remote = tmp_path / "shared.git"
    await failover.ensure_remote(remote)
    mine = fencing.Fence(run["id"], int(run["attempt"]))
    number, commits = int(made["number"]), dict(made["commits"])
    repo_id = next(iter(commits))

    await failover.push_fenced(engine, remote, run["worktrees"], run["id"], mine, number, commits)
    pushed = failover.shared_ref(repo_id, run["id"], number)
    assert _git(remote, "rev-parse", pushed) == commits[repo_id]

    await writer.run(lambda tx: runs.begin_attempt(tx, run["id"]))  # the run moved on
    late = number + 1  # the lost host's next push (its row would have been refused too)
    with pytest.raises(fencing.StaleAttempt):
        await failover.push_fenced(engine, remote, run["worktrees"], run["id"], mine, late, commits)
    listed = _git(remote, "for-each-ref", "--format=%(refname)", "refs/codeyard-shared/")
    assert listed.split() == [pushed]
    # Pushes outside any attempt (no fence) are the control plane's: not refused.
    await failover.push_fenced(engine, remote, run["worktrees"], run["id"], None, late, commits)
    assert failover.shared_ref(repo_id, run["id"], late) in _git(
        remote, "for-each-ref", "--format=%(refname)"
    )
