"""A turn's end reads nothing for local checks while no repository runs them after its turns
(issue 15: the run and each of its repositories' checks were read at every turn end). Whether
any does is kept in memory and asked again after each write of a repository's checks (the
one door, ``store.checks.save_config``); another server's write is heard on PostgreSQL
(``tests/integration/test_cluster_once.py``). The push of a run to its pull request, at the
same turn ends, reads the run's status and resolution only, and claims nothing, for a run with
no pull request. The app over httpx, SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from codeyard.services import checks, pr_sync
from tests.conftest import Api, make_repo
from tests.integration.test_local_checks import events_of, project_repo, start_run
from tests.support.sql import statements
from tests.support.waits import eventually

pytestmark = pytest.mark.anyio


async def test_turn_ends_read_nothing_for_checks_until_a_repository_runs_them(
    api: Api, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "app")
    repo_id = await project_repo(api, repo, checks=[{"name": "ok", "command": "echo ok"}])
    run = await start_run(api, repo, [{"write": {"path": "a.txt", "content": "a\n"}}])
    await api.wait_status(run["id"], "review")
    engine = api.services.engine

    await checks._after_turn_logged(api.services, run["id"], 1)  # looks once
    # (The app's other followers may read meanwhile: only what checks read is judged.)
    with statements(engine, lambda sql: "repo_checks" in sql or "cluster_claims" in sql) as sent:
        for event_id in (2, 3, 4):
            await checks._after_turn_logged(api.services, run["id"], event_id)
    assert sent == []

    put = {"checks": [{"name": "ok", "command": "echo ok"}], "after_turn": True}
    resp = await api.request("PUT", f"/api/repos/{repo_id}/checks", json=put)
    assert resp.status_code == 200, resp.text
    await checks._after_turn_logged(api.services, run["id"], 5)

    async def checked() -> bool:
        return any(e["type"] == "check.suite_completed" for e in await events_of(api, run["id"]))

    assert await eventually(checked, timeout=30)


async def test_a_turn_end_without_a_pull_request_reads_two_columns_and_claims_nothing(
    api: Api, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "app")
    await project_repo(api, repo)
    run = await start_run(api, repo, [{"write": {"path": "a.txt", "content": "a\n"}}])
    await api.wait_status(run["id"], "review")
    # The app's own follower makes this same call for the same status event (pr_sync.
    # follow_turns): let it be done before the judged call, so its read is not counted too.
    assert await eventually(lambda: _no_status_read_for(api, 0.5), timeout=30)
    with statements(api.services.engine) as sent:
        await pr_sync._push_logged(api.services, run["id"], 1)
    # (The app's other followers may read meanwhile: only this call's statements are judged.)
    assert not [sql for sql in sent if "cluster_claims" in sql], sent
    narrow = [sql for sql in sent if sql.startswith("SELECT runs.status, runs.resolution")]
    assert len(narrow) == 1, sent


async def _no_status_read_for(api: Api, seconds: float) -> bool:
    """No ``SELECT runs.status, runs.resolution`` (the push's first read) for ``seconds``."""
    with statements(
        api.services.engine, lambda sql: sql.startswith("SELECT runs.status, runs.resolution")
    ) as seen:
        await asyncio.sleep(seconds)
    return not seen
