"""What the notifier and the delivery worker read (SQLite and PostgreSQL; issue 15).

The notifier looks up who can be reached before anyone's preferences: a user without a web
push subscription, a device or a channel is never read further, and an install where nobody
has one reads one statement of targets per notification. The delivery worker, with nothing
pending, waits for a new row's wake-up instead of reading the outbox every second.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import insert, select

from codeyard.domain.events import utc_now
from codeyard.notifications.derive import Notifier
from codeyard.store import schema
from codeyard.store.consumers import LoggedEvent
from tests.conftest import Api
from tests.support.sql import statements

pytestmark = pytest.mark.anyio


async def _add(api: Api, table: Any, **row: Any) -> None:
    async def job(tx: Any) -> None:
        await tx.conn.execute(insert(table).values(**row))

    await api.services.writer.run(job)


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
    await _add(
        api,
        schema.notification_channels,
        id="ch_1",
        user_id="",
        kind="webhook",
        name="w",
        config_sealed="x",
        created_at=now,
    )
    await _add(
        api,
        schema.push_subscriptions,
        id="ps_1",
        user_id="",
        endpoint="https://push.invalid/1",
        endpoint_hash="h1",
        p256dh="k",
        auth="a",
        created_at=now,
    )
    await _add(  # another user's device: not the run's creator, not an admin
        api,
        schema.devices,
        id="dev_1",
        user_id="usr_other",
        platform="ios",
        token_sealed="t",
        token_hash="th",
        created_at=now,
    )
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
