"""After-turn work runs once per cluster, not once per API server (issue 16).

Two apps in this process share only a PostgreSQL database; both see every event through
``LISTEN/NOTIFY``. A run's after-turn checks used to run on each of them (two suites in one
worktree); now the server that claims the event runs them. Real git, real checks in the sandbox.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from codeyard.cluster import claims
from codeyard.config import Settings
from codeyard.testing.postgres import PostgresCluster
from tests.conftest import TOKEN, Api, make_repo, running_api
from tests.support.waits import eventually

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


def _settings(tmp_path: Path, name: str, url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / name, database_url=url, admin_token=TOKEN, bash_timeout_seconds=30
    )


async def _events(api: Api, run_id: str) -> list[dict[str, Any]]:
    resp = await api.get(f"/api/runs/{run_id}/events?limit=500")
    assert resp.status_code == 200, resp.text
    data: list[dict[str, Any]] = resp.json()["data"]
    return data


async def test_after_turn_checks_run_once_with_two_api_servers(
    pg_cluster: PostgresCluster, tmp_path: Path
) -> None:
    url = pg_cluster.create_database()
    repo = make_repo(tmp_path / "app")
    async with (
        running_api(_settings(tmp_path, "a", url)) as a,
        running_api(_settings(tmp_path, "b", url)) as b,
    ):
        resp = await b.post("/api/projects", json={"name": "app", "repos": [{"path": str(repo)}]})
        assert resp.status_code == 201, resp.text
        repo_id = resp.json()["repos"][0]["id"]
        check = {"name": "slow", "command": "sleep 0.5; echo checked"}
        resp = await b.request(
            "PUT", f"/api/repos/{repo_id}/checks", json={"checks": [check], "after_turn": True}
        )
        assert resp.status_code == 200, resp.text
        body = {
            "prompt": "Two turns",
            "repo_path": str(repo),
            "provider": "script",
            "agent_options": {
                "scenario": {"steps": [{"write": {"path": "a.txt", "content": "a\n"}}]},
                "on_message": [{"say": "again"}],
            },
        }
        resp = await a.post("/api/runs", json=body)  # server a's executor drives it
        assert resp.status_code == 201, resp.text
        run_id = resp.json()["id"]

        async def suites(count: int) -> bool:
            done = [e for e in await _events(b, run_id) if e["type"] == "check.suite_completed"]
            return len(done) >= count

        assert await eventually(lambda: suites(1), timeout=30)
        await a.wait_status(run_id, "review")
        resp = await a.post(f"/api/runs/{run_id}/messages", json={"text": "once more"})
        assert resp.status_code in (200, 201, 202), resp.text
        assert await eventually(lambda: suites(2), timeout=30)
        await anyio.sleep(2)  # a second server's suite would have started by now
        events = await _events(a, run_id)
    types = [e["type"] for e in events]
    assert types.count("turn.started") == 2
    assert types.count("check.suite_completed") == 2, types  # one per turn, not one per server
    assert types.count("check.started") == 2


async def test_a_claim_is_won_once(pg_cluster: PostgresCluster, tmp_path: Path) -> None:
    url = pg_cluster.create_database()
    async with (
        running_api(_settings(tmp_path, "a", url)) as a,
        running_api(_settings(tmp_path, "b", url)) as b,
    ):
        won = []
        for api in (a, b, a):
            svc = api.services
            won.append(await claims.claim(svc.engine, svc.writer, "test:42"))
        assert won == [True, False, False]
        svc = b.services
        assert await claims.claim(svc.engine, svc.writer, "test:43") is True
