"""Per-cluster singletons (issue 16): two API servers on one PostgreSQL, one runs them.

Both apps run in this process and share only the database, as two hosts would. Retention,
notification delivery, analytics rollups and the GitHub sweeper/poller run on the server that
holds the cluster role (a PostgreSQL session advisory lock); when it goes away the other takes
the role within one retry and starts them. The retry is shortened for the test.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from codeyard.cluster import leadership
from codeyard.config import Settings
from codeyard.testing.postgres import PostgresCluster
from tests.conftest import TOKEN, Api, running_api

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


def _settings(tmp_path: Path, name: str, url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / name, database_url=url, admin_token=TOKEN, bash_timeout_seconds=30
    )


def _rollup_running(api: Api) -> bool:
    task = api.app.state.subscribers.rollup._task
    return task is not None and not task.done()


async def _until(check: object, timeout: float) -> None:
    async def wait() -> None:
        while not check():  # type: ignore[operator]
            await asyncio.sleep(0.05)

    await asyncio.wait_for(wait(), timeout)


async def test_one_server_runs_the_singletons_and_another_takes_over(
    pg_cluster: PostgresCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(leadership, "RETRY_SECONDS", 0.2)
    url = pg_cluster.create_database()
    async with running_api(_settings(tmp_path, "b", url)) as b:
        # b started alone and took the role at once.
        assert b.app.state.leadership.is_leader and _rollup_running(b)
        async with running_api(_settings(tmp_path, "a", url)) as a:
            await _a_waits_then_takes_over(a, b)


async def _a_waits_then_takes_over(a: Api, b: Api) -> None:
    await asyncio.sleep(0.6)  # a few retries of a
    assert not a.app.state.leadership.is_leader
    assert not _rollup_running(a)  # notification delivery and rollups: once, on b

    # b stops its singletons' role by going away (a closed session frees the lock).
    await b.app.state.leadership.stop()
    assert not _rollup_running(b)
    await _until(lambda: a.app.state.leadership.is_leader, 30)
    await _until(lambda: _rollup_running(a), 30)
    assert a.app.state.leadership.terms == 1


async def test_a_holder_that_loses_its_connection_steps_down(
    pg_cluster: PostgresCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database ends the holder's session (as when its host drops off the network): the
    holder stops its singletons, the other server takes the role, no two run at once after."""
    monkeypatch.setattr(leadership, "RETRY_SECONDS", 0.2)
    url = pg_cluster.create_database()
    async with (
        running_api(_settings(tmp_path, "a", url)) as a,
        running_api(_settings(tmp_path, "b", url)) as b,
    ):
        held, other = a.app.state.leadership, b.app.state.leadership
        assert held.is_leader and not other.is_leader
        raw = await held._conn.get_raw_connection()
        pid = raw.driver_connection.get_server_pid()
        async with b.services.engine.connect() as conn:
            await conn.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
        await _until(lambda: not held.is_leader and not _rollup_running(a), 30)
        await _until(lambda: other.is_leader and _rollup_running(b), 30)
        await asyncio.sleep(0.6)  # a tries again, and finds the role taken
        assert not held.is_leader and other.is_leader
