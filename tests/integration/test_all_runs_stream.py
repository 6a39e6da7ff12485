"""The stream over all runs across two writer processes on one PostgreSQL (issue 16).

A stream over every run sends ids in ascending order and skips ids it has passed. Ids come
from a sequence, so a batch of server B that drew a smaller id but commits after server A's
batch would be skipped for ever (live, and on a reconnect with ``Last-Event-ID``). Writers
commit in id order cluster-wide (``store.writer.COMMIT_ORDER_LOCK``): this test holds B's
batch open after it drew its id, has A append meanwhile, and expects A's commit to wait and
the stream to show both events. Both apps run in this process, sharing only the database.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from codeyard.config import Settings
from codeyard.domain import events as ev
from codeyard.domain.events import StoredEvent
from codeyard.events.hub import EventFilter
from codeyard.events.stream import follow
from codeyard.store.writer import Tx
from codeyard.testing.postgres import PostgresCluster
from tests.conftest import TOKEN, Api, running_api

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


def _settings(tmp_path: Path, name: str, url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / name, database_url=url, admin_token=TOKEN, bash_timeout_seconds=30
    )


async def _draft(api: Api, repo: Path) -> str:
    body = {"prompt": "all runs", "repo_path": str(repo), "provider": "script", "draft": True}
    resp = await api.post("/api/runs", json=body)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


async def _collect(api: Api, after: int, want: int, ready: asyncio.Event) -> list[StoredEvent]:
    got: list[StoredEvent] = []
    flt = EventFilter(types=frozenset({"error"}))  # every run
    stream = follow(api.services.engine, api.services.hub, flt, after, on_replay_done=ready.set)
    async for batch in stream:
        got.extend(batch)
        if len(got) >= want:
            break
    await stream.aclose()
    return got


async def test_a_late_commit_of_a_smaller_id_is_not_skipped(
    pg_cluster: PostgresCluster, tmp_path: Path, git_repo: Path
) -> None:
    url = pg_cluster.create_database()
    async with (
        running_api(_settings(tmp_path, "a", url)) as a,
        running_api(_settings(tmp_path, "b", url)) as b,
    ):
        run_b, run_a = await _draft(a, git_repo), await _draft(a, git_repo)
        ready, inside, release = asyncio.Event(), asyncio.Event(), asyncio.Event()
        reader = asyncio.create_task(_collect(a, 0, 2, ready))
        tasks: list[asyncio.Task[object]] = []
        try:
            await asyncio.wait_for(ready.wait(), 10)

            async def slow(tx: Tx) -> StoredEvent:  # B: id drawn, commit held back
                (stored,) = await tx.emit(run_b, [ev.ErrorEvent(message="b, drawn first")])
                inside.set()
                await asyncio.wait_for(release.wait(), 20)
                return stored

            tasks.append(asyncio.create_task(b.services.writer.run(slow)))
            await asyncio.wait_for(inside.wait(), 10)
            late = [ev.ErrorEvent(message="a, drawn second")]
            tasks.append(asyncio.create_task(a.services.writer.append(run_a, late)))
            await asyncio.sleep(0.5)
            assert not tasks[1].done()  # A's batch waits for B's to commit
            release.set()
            first, second = await asyncio.wait_for(asyncio.gather(*tasks), 20)
            got = await asyncio.wait_for(reader, 20)
        finally:
            release.set()
            reader.cancel()
            for task in tasks:
                task.cancel()
            await asyncio.gather(reader, *tasks, return_exceptions=True)
        assert isinstance(first, StoredEvent) and isinstance(second, list)
        assert first.id < second[0].id
        assert [e.data["message"] for e in got] == ["b, drawn first", "a, drawn second"]
        # A client reconnecting after the first event still gets the second, once.
        again = await asyncio.wait_for(_collect(a, got[0].id, 1, asyncio.Event()), 10)
        assert [e.id for e in again] == [got[1].id]
