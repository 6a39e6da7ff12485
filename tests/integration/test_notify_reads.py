"""What the notifier and the delivery worker read (SQLite and PostgreSQL; issue 15).

The notifier looks up who can be reached before anyone's preferences: a user without a web
push subscription, a device or a channel is never read further, and an install where nobody
has one reads one statement of targets per notification. The delivery worker, with nothing
pending, waits for a new row's wake-up instead of reading the outbox every second.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import insert, select

from codeyard.domain.events import utc_now
from codeyard.notifications import store
from codeyard.notifications.derive import Notifier
from codeyard.store import schema, wakeups
from codeyard.store.consumers import LoggedEvent
from codeyard.store.db import create_engine
from codeyard.store.writer import Tx
from tests.conftest import Api
from tests.integration.test_idle_pollers import until
from tests.support.sql import statements

pytestmark = pytest.mark.anyio


async def _add(api: Api, table: Any, **row: Any) -> None:
    async def job(tx: Any) -> None:
        await tx.conn.execute(insert(table).values(**row))

    await api.services.writer.run(job)


def _channel(ident: str, now: str) -> dict[str, Any]:
    return {
        "id": ident,
        "user_id": "",
        "kind": "webhook",
        "name": "w",
        "config_sealed": "x",
        "created_at": now,
    }


def _subscription(ident: str, now: str) -> dict[str, Any]:
    return {
        "id": ident,
        "user_id": "",
        "endpoint": f"https://push.invalid/{ident}",
        "endpoint_hash": f"h-{ident}",
        "p256dh": "k",
        "auth": "a",
        "created_at": now,
    }


def _device(ident: str, user_id: str, now: str) -> dict[str, Any]:
    return {
        "id": ident,
        "user_id": user_id,
        "platform": "ios",
        "token_sealed": "t",
        "token_hash": f"th-{ident}",
        "created_at": now,
    }


async def _add_targets(api: Api, now: str) -> None:
    """Through the store's doors for targets (each one announces the write)."""
    writer = api.services.writer
    await writer.run(lambda tx: store.add_channel(tx, _channel("ch_1", now)))
    await writer.run(lambda tx: store.add_subscription(tx, _subscription("ps_1", now)))
    # Another user's device: not the run's creator, not an admin.
    await writer.run(lambda tx: store.add_device(tx, _device("dev_1", "usr_other", now)))


async def _draft(api: Api, repo: Path) -> dict[str, Any]:
    body = {"prompt": "notify", "repo_path": str(repo), "provider": "script", "draft": True}
    resp = await api.post("/api/runs", json=body)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


async def test_preferences_are_read_only_for_users_who_can_be_reached(
    api: Api, git_repo: Path
) -> None:
    run = await _draft(api, git_repo)
    notifier: Notifier = api.app.state.subscribers.notifications.notifier
    engine = api.services.engine
    asked = json.dumps({"approval": {"id": "apr_1", "tool": "Write", "title": "x.txt"}})
    events = [LoggedEvent(1, run["id"], run["project_id"], "approval.requested", utc_now(), asked)]

    async def prepare() -> tuple[list[dict[str, Any]], list[str]]:
        with statements(engine) as seen:
            async with engine.connect() as conn:
                rows = await notifier.prepare(conn, events)
        return rows, [s for s in seen if "notification_prefs" in s]

    rows, prefs_reads = await prepare()  # nobody has a target: no preferences read
    assert rows == [] and prefs_reads == []

    now = utc_now()
    await _add_targets(api, now)
    rows, prefs_reads = await prepare()
    assert [(r["user_id"], r["target"]) for r in rows] == [
        ("", "webpush:ps_1"),
        ("", "channel:ch_1"),
    ]
    assert len(prefs_reads) == 1  # the one user with targets

    prefs = {"events": ["run.failed"], "quiet_start": None, "quiet_end": None, "timezone": "UTC"}
    await _add(api, schema.notification_prefs, user_id="", updated_at=now, **prefs)
    rows, prefs_reads = await prepare()
    assert rows == [] and len(prefs_reads) == 1  # approvals muted by the preference

    await _add(api, schema.run_notify, run_id=run["id"], notify=False, updated_at=now)
    rows, prefs_reads = await prepare()
    assert rows == [] and prefs_reads == []  # the run is muted: nobody is looked up


async def test_with_no_target_anywhere_a_notifiable_event_reads_nothing(
    api: Api, git_repo: Path, database_url: str
) -> None:
    """Whether any target exists is kept in memory; every door that adds or removes one drops
    it (here after the commit; on PostgreSQL another process's announcement does too)."""
    run = await _draft(api, git_repo)
    notifier: Notifier = api.app.state.subscribers.notifications.notifier
    engine, writer = api.services.engine, api.services.writer
    await until(lambda: wakeups.hearing(engine), "the server hears every write")
    finished = json.dumps({"from": "running", "to": "review"})
    events = [LoggedEvent(1, run["id"], run["project_id"], "run.status", utc_now(), finished)]

    async def prepare() -> tuple[list[str], list[str]]:
        with statements(engine) as seen:
            async with engine.connect() as conn:
                rows = await notifier.prepare(conn, events)
        return [r["target"] for r in rows], seen

    await prepare()  # reads whether any target exists, once
    for _ in range(3):
        assert await prepare() == ([], [])  # it read the run, the admins and the targets

    now = utc_now()
    doors: list[tuple[str, Callable[[Tx], Awaitable[Any]], Callable[[Tx], Awaitable[Any]]]] = [
        (
            "channel:ch_1",
            lambda tx: store.add_channel(tx, _channel("ch_1", now)),
            lambda tx: store.remove_target(tx, "channel:ch_1"),
        ),
        (
            "webpush:ps_1",
            lambda tx: store.add_subscription(tx, _subscription("ps_1", now)),
            lambda tx: store.remove_subscription(tx, "h-ps_1", ""),
        ),
        (
            "device:dev_1",
            lambda tx: store.add_device(tx, _device("dev_1", "", now)),
            lambda tx: store.remove_target(tx, "device:dev_1"),
        ),
    ]
    for target, add, remove in doors:
        await writer.run(add)
        assert (await prepare())[0] == [target]
        await writer.run(remove)
        assert (await prepare())[0] == []  # reads whether any target is left, once
        assert await prepare() == ([], [])

    if not database_url.startswith("postgresql"):
        return
    # Another API server adds a channel: its announcement drops this server's answer.
    other = create_engine(database_url)
    try:
        async with other.begin() as conn:
            await conn.execute(
                schema.notification_channels.insert().values(**_channel("ch_2", now))
            )
            await wakeups.announce(conn, wakeups.NOTIFICATION_TARGETS)
        found: list[str] = []

        async def heard() -> bool:
            found[:] = (await prepare())[0]
            return found == ["channel:ch_2"]

        with anyio.fail_after(30):
            while not await heard():
                await anyio.sleep(0.05)
    finally:
        await other.dispose()


async def test_an_idle_delivery_worker_waits_for_a_new_row(api: Api) -> None:
    worker = api.app.state.subscribers.notifications.worker
    engine = api.services.engine
    outbox = schema.notification_outbox
    with statements(engine) as seen:
        await anyio.sleep(2.5)
    reads = [s for s in seen if "notification_outbox" in s]
    assert len(reads) <= 2, reads  # one pass at most (it read every second before)

    await _add(
        api,
        outbox,
        event_id=1,
        run_id="run_gone",
        user_id="",
        target="channel:ch_gone",
        kind="run.finished",
        tag="t",
        payload={
            "kind": "run.finished",
            "title": "t",
            "body": "",
            "tag": "t",
            "run_id": "r",
            "path": "/",
        },
        status="pending",
        attempts=0,
        next_attempt_at=utc_now(),
        created_at=utc_now(),
    )
    worker.wake()  # what the notifiers do with every row they add
    with anyio.fail_after(30):
        while True:
            async with engine.connect() as conn:
                status = (await conn.execute(select(outbox.c.status))).scalar_one()
            if status not in ("pending", "sending"):
                break
            await anyio.sleep(0.05)
    assert status == "skipped"  # its channel does not exist
