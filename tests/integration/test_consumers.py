"""Durable log consumers fed by the hub (``store.consumers``) and the ticket follower's replay.

A consumer reads the log only to catch up; live it takes the hub's events of its own types, so
events of other types cost it nothing (no query, no transaction), and a dropped subscription is
made good from the cursor. Real servers (SQLite and PostgreSQL), the real writer and hub; the
consumer's own engine counts the SQL it sends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from codeyard.domain import events as ev
from codeyard.services.context import Services
from codeyard.store.consumers import LogConsumer, LoggedEvent, read_cursor
from codeyard.store.db import create_engine
from codeyard.store.writer import Tx
from codeyard.tickets.follower import follow_runs
from tests.conftest import Api
from tests.support.sql import statements

pytestmark = pytest.mark.anyio


class Errors(LogConsumer):
    """Follows ``error`` events; remembers what it applied and in which transaction."""

    name = "test.errors"
    types = frozenset({"error"})
    poll_seconds = 300.0  # no poll during a test: only the hub wakes it

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.seen: list[str] = []
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()

    async def prepare(self, conn: AsyncConnection, events: Sequence[LoggedEvent]) -> list[str]:
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        return [e.data for e in events]

    async def apply(self, tx: Tx, prepared: list[str]) -> None:
        self.seen.extend(prepared)


async def until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    async def poll() -> None:
        while not check():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


async def draft(api: Api, repo: Path) -> str:
    body = {"prompt": "log", "repo_path": str(repo), "provider": "script", "draft": True}
    resp = await api.post("/api/runs", json=body)
    assert resp.status_code == 201, resp.text
    run_id: str = resp.json()["id"]
    return run_id


async def started(api: Api, **attrs: Any) -> tuple[Errors, AsyncEngine]:
    """A consumer on its own engine (so its statements can be counted), caught up."""
    engine = create_engine(api.services.settings.resolved_database_url)
    consumer = Errors(engine, api.services.writer, api.services.hub)
    for key, value in attrs.items():
        setattr(consumer, key, value)
    consumer.start()
    await until(lambda: consumer.catch_ups == 1 and not consumer._reading.locked())
    return consumer, engine


async def test_events_of_other_types_cost_a_consumer_nothing(api: Api, git_repo: Path) -> None:
    run_id = await draft(api, git_repo)
    writer = api.services.writer
    consumer, engine = await started(api)
    try:
        with statements(engine) as sent:
            for k in range(20):
                await writer.append(run_id, [ev.AgentMessage(message_id=None, text=f"m{k}")])
            await asyncio.sleep(0.3)
            assert sent == [] and consumer.live_batches == 0  # never woke up
            stored = await writer.append(run_id, [ev.ErrorEvent(message="boom")])
            await until(lambda: consumer.applied == 1)
        # Applied from the hub's copy: no read of the log or of the cursor, one transaction.
        assert not [s for s in sent if "events" in s or "consumer_cursors" in s], sent
        assert consumer.catch_ups == 1 and consumer.live_batches == 1
        assert consumer.seen == [stored[0].data_json]
        async with engine.connect() as conn:
            assert await read_cursor(conn, consumer.name) == stored[0].id
    finally:
        await consumer.stop()
        await engine.dispose()


class Quiet(Errors):
    """Derives nothing (a notifier whose events nobody is told about)."""

    name = "test.quiet"

    def nothing_to_write(self, prepared: list[str]) -> bool:
        return True


async def test_live_events_that_derive_nothing_cost_no_transaction(
    api: Api, git_repo: Path
) -> None:
    run_id = await draft(api, git_repo)
    writer = api.services.writer
    engine = create_engine(api.services.settings.resolved_database_url)
    consumer = Quiet(engine, writer, api.services.hub)
    consumer.start()
    try:
        await until(lambda: consumer.catch_ups == 1 and not consumer._reading.locked())
        first = await writer.append(run_id, [ev.ErrorEvent(message="nobody hears")])
        await until(lambda: consumer.applied == 1)
        async with engine.connect() as conn:
            assert await read_cursor(conn, consumer.name) is None  # no transaction
        await consumer.settle()  # what the poll does
        async with engine.connect() as conn:
            assert await read_cursor(conn, consumer.name) == first[0].id
        second = await writer.append(run_id, [ev.ErrorEvent(message="nor this")])
        await until(lambda: consumer.applied == 2)
        await consumer.stop()  # a graceful stop stores how far it got
        async with engine.connect() as conn:
            assert await read_cursor(conn, consumer.name) == second[0].id
        assert consumer.seen == []
    finally:
        await consumer.stop()
        await engine.dispose()


async def test_a_dropped_subscription_is_read_back_from_the_cursor(
    api: Api, git_repo: Path
) -> None:
    run_id = await draft(api, git_repo)
    writer = api.services.writer
    consumer, engine = await started(api, gate=asyncio.Event(), max_pending=3)
    try:
        first = await writer.append(run_id, [ev.ErrorEvent(message="0")])
        await asyncio.wait_for(consumer.entered.wait(), 10)  # held inside the first apply
        subs = list(api.services.hub._global)
        later = [
            (await writer.append(run_id, [ev.ErrorEvent(message=str(k))]))[0] for k in range(1, 6)
        ]
        # Its subscription was dropped while it was busy (a new one is made afterwards). On
        # PostgreSQL the hub hears of commits through LISTEN, so the drop may come a little after
        # the last append returned.
        mine = [s for s in subs if s.filter.types == consumer.types]
        assert len(mine) == 1
        await until(lambda: mine[0].dropped)
        assert consumer.gate is not None
        consumer.gate.set()
        await until(lambda: consumer.applied == 6)
        await asyncio.sleep(0.2)
        want = [e.data_json for e in [*first, *later]]
        assert consumer.seen == want  # each once, in order
        assert consumer.catch_ups == 2  # the start, and the read after the drop
        async with engine.connect() as conn:
            assert await read_cursor(conn, consumer.name) == later[-1].id
    finally:
        await consumer.stop()
        await engine.dispose()


async def test_a_restarted_consumer_resumes_at_its_cursor(api: Api, git_repo: Path) -> None:
    run_id = await draft(api, git_repo)
    writer = api.services.writer
    consumer, engine = await started(api)
    await writer.append(run_id, [ev.ErrorEvent(message="before")])
    await until(lambda: consumer.applied == 1)
    await consumer.stop()
    missed = await writer.append(run_id, [ev.ErrorEvent(message="while stopped")])
    await writer.append(run_id, [ev.AgentMessage(message_id=None, text="not mine")])
    again = Errors(engine, writer, api.services.hub)
    again.start()
    try:
        await until(lambda: again.applied == 1)
        assert again.seen == [missed[0].data_json]
    finally:
        await again.stop()
        await engine.dispose()


async def test_the_ticket_follower_replays_what_a_dropped_subscription_missed(
    api: Api, git_repo: Path
) -> None:
    first, second = await draft(api, git_repo), await draft(api, git_repo)
    gate, entered = asyncio.Event(), asyncio.Event()
    handled: list[str] = []

    async def on_status(svc: Services, run_id: str) -> None:
        if run_id == first:
            entered.set()
            await gate.wait()
        handled.append(run_id)

    hub = api.services.hub
    before = set(hub._global)
    task = asyncio.create_task(follow_runs(api.services, on_status))
    try:
        await until(lambda: len(hub._global - before) == 1)
        (sub,) = hub._global - before
        assert (await api.post(f"/api/runs/{first}/cancel")).status_code == 200
        await asyncio.wait_for(entered.wait(), 10)
        sub._drop()  # it fell behind (or PostgreSQL's LISTEN reconnected) ...
        assert (await api.post(f"/api/runs/{second}/cancel")).status_code == 200
        gate.set()  # ... and the second run's status change went by meanwhile
        await until(lambda: second in handled)
        assert handled == [first, second]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_a_cursor_that_exists_moves_in_one_statement(api: Api, git_repo: Path) -> None:
    """The first move inserts the cursor's row; the next ones only update it."""
    run_id = await draft(api, git_repo)
    writer = api.services.writer
    consumer, engine = await started(api)
    try:
        with statements(api.services.engine, lambda sql: "consumer_cursors" in sql) as sent:
            await writer.append(run_id, [ev.ErrorEvent(message="first")])
            await until(lambda: consumer.applied == 1)
            first = len(sent)
            await writer.append(run_id, [ev.ErrorEvent(message="second")])
            await until(lambda: consumer.applied == 2)
        assert [s.split()[0] for s in sent[first:]] == ["UPDATE"]
        async with engine.connect() as conn:
            assert await read_cursor(conn, consumer.name) is not None
    finally:
        await consumer.stop()
        await engine.dispose()
