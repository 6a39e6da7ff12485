"""Local checks (issue 21) on real git worktrees, sandboxed like setup scripts, through the API:
they gate landing, and their fix loop hands failures back to the (script) agent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api, make_repo
from tests.support.waits import eventually

pytestmark = pytest.mark.anyio


async def project_repo(api: Api, repo: Path, **checks: Any) -> str:
    resp = await api.post("/api/projects", json={"name": repo.name, "repos": [{"path": str(repo)}]})
    assert resp.status_code == 201, resp.text
    repo_id: str = resp.json()["repos"][0]["id"]
    resp = await api.request("PUT", f"/api/repos/{repo_id}/checks", json=checks)
    assert resp.status_code == 200, resp.text
    return repo_id


async def start_run(api: Api, repo: Path, steps: list[Any], **options: Any) -> dict[str, Any]:
    body = {
        "prompt": "Work on it",
        "repo_path": str(repo),
        "provider": "script",
        "agent_options": {"scenario": {"steps": steps}, **options},
    }
    resp = await api.post("/api/runs", json=body)
    assert resp.status_code == 201, resp.text
    run: dict[str, Any] = resp.json()
    return run


async def events_of(api: Api, run_id: str) -> list[dict[str, Any]]:
    resp = await api.get(f"/api/runs/{run_id}/events?limit=500")
    assert resp.status_code == 200, resp.text
    data: list[dict[str, Any]] = resp.json()["data"]
    return data


async def test_required_checks_block_landing_until_they_pass(
    sqlite_api: Api, tmp_path: Path
) -> None:
    api = sqlite_api
    repo = make_repo(tmp_path / "app")
    tests = {
        "name": "tests",
        "command": "echo checking; test -f ok.txt || { echo MISSING-OK; exit 3; }",
    }
    await project_repo(api, repo, checks=[tests], required=True)
    run = await start_run(api, repo, [{"write": {"path": "a.txt", "content": "a\n"}}])
    done = await api.wait_status(run["id"], "review", "failed")
    assert done["status"] == "review", done["status_reason"]
    worktree = Path(done["worktrees"][next(iter(done["worktrees"]))])

    refused = await api.post(f"/api/runs/{run['id']}/resolve", json={"action": "merge"})
    assert refused.status_code == 409, refused.text
    assert "have not run" in refused.json()["detail"]
    assert f"/api/runs/{run['number']}/checks" in refused.json()["detail"]

    failed = await api.post(f"/api/runs/{run['id']}/checks")
    assert failed.status_code == 200, failed.text
    assert failed.json()["passed"] is False
    (result,) = failed.json()["results"]
    assert result["exit_code"] == 3 and "MISSING-OK" in result["log_tail"]
    refused = await api.post(f"/api/runs/{run['id']}/resolve", json={"action": "merge"})
    assert refused.status_code == 409 and "failed" in refused.json()["detail"]

    (worktree / "ok.txt").write_text("fixed\n")
    passed = await api.post(f"/api/runs/{run['id']}/checks")
    assert passed.json()["passed"] is True, passed.text
    last = (await api.get(f"/api/runs/{run['id']}/checks")).json()["last"]
    assert last["passed"] and last["current"]

    (worktree / "later.txt").write_text("changed after the checks\n")
    refused = await api.post(f"/api/runs/{run['id']}/resolve", json={"action": "merge"})
    assert refused.status_code == 409 and "changed since" in refused.json()["detail"]
    (worktree / "later.txt").unlink()

    landed = await api.post(f"/api/runs/{run['id']}/resolve", json={"action": "merge"})
    assert landed.status_code == 200, landed.text
    types = [e["type"] for e in await events_of(api, run["id"])]
    assert types.count("check.started") == 2 and types.count("check.suite_completed") == 2
    assert "git.merged" in types


async def test_failing_checks_go_back_to_the_agent_three_times_then_stop(
    sqlite_api: Api, tmp_path: Path
) -> None:
    api = sqlite_api
    repo = make_repo(tmp_path / "app")
    check = {"name": "lint", "command": 'echo "LINT-FAILED round $(wc -l < rounds)"; exit 1'}
    await project_repo(api, repo, checks=[check], after_turn=True, fix_loop=True)
    run = await start_run(
        api,
        repo,
        [{"bash": "echo start > rounds"}],
        on_message=[{"bash": "echo again >> rounds"}],
    )

    async def exhausted() -> bool:
        return any(e["type"] == "feedback.exhausted" for e in await events_of(api, run["id"]))

    assert await eventually(exhausted, timeout=60)
    await api.wait_status(run["id"], "review")
    events = await events_of(api, run["id"])
    # The executor names a turn made of queued messages "message"; the prompt says whose it is.
    fix_turns = [
        e
        for e in events
        if e["type"] == "turn.started" and e["data"]["prompt"].startswith("Codeyard ran")
    ]
    assert len(fix_turns) == 3
    assert "LINT-FAILED round 1" in fix_turns[0]["data"]["prompt"]
    assert "LINT-FAILED round 2" in fix_turns[1]["data"]["prompt"]
    assert "Attempt 3 of 3" in fix_turns[2]["data"]["prompt"]
    sent = [e["data"] for e in events if e["type"] == "feedback.sent"]
    assert [s["attempt"] for s in sent] == [1, 2, 3]
    assert len({s["key"] for s in sent}) == 3
    types = [e["type"] for e in events]
    assert types.count("check.suite_completed") == 4 and types.count("feedback.exhausted") == 1
    assert types.count("turn.started") == 4  # the first turn and three fix turns, no fourth


async def test_checks_on_a_repository_without_any_are_a_409_naming_the_fix(
    sqlite_api: Api, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "app")
    await project_repo(sqlite_api, repo)
    run = await start_run(sqlite_api, repo, [{"say": "hi"}])
    await sqlite_api.wait_status(run["id"], "review")
    resp = await sqlite_api.post(f"/api/runs/{run['id']}/checks")
    assert resp.status_code == 409
    assert "PUT /api/repos/{repo_id}/checks" in resp.json()["detail"]
    bad = await sqlite_api.request(
        "PUT",
        f"/api/repos/{run['repo_ids'][0]}/checks",
        json={"checks": [{"name": "t", "command": "x"}, {"name": "t", "command": "y"}]},
    )
    assert bad.status_code == 422 and "unique" in bad.text
