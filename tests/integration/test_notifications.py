"""Notifications end to end: event log → outbox → channels over real loopback HTTP.

The fake push service verifies VAPID and decrypts each payload with the browser's keys
(``tests/support/fake_receivers.py``); the webhook receiver verifies Standard Webhooks
signatures with the secret Codeyard handed out. Runs use the `script` provider, whose write
steps ask for approval in the default permission mode through the path real agents use.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from standardwebhooks.webhooks import Webhook

from codeyard.config import Settings
from codeyard.store import schema
from tests.conftest import TOKEN, Api, open_api
from tests.support.auth import add_user, anonymous, bearer, token_of
from tests.support.fake_receivers import Receivers, start_receivers

pytestmark = pytest.mark.anyio


@pytest.fixture
def receivers() -> Iterator[Receivers]:
    recv = start_receivers()
    yield recv
    recv.close()


def notify_settings(tmp_path: Path, grace: float = 0.2, **extra: Any) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        admin_token=TOKEN,
        bash_timeout_seconds=30,
        notify_grace_seconds=grace,
        public_url="http://codeyard",
        **extra,
    )


@pytest.fixture
async def napi(tmp_path: Path) -> AsyncIterator[Api]:
    async for api in open_api(notify_settings(tmp_path)):
        yield api


async def ask_run(api: Api, repo: Path, **extra: Any) -> str:
    body = {
        "prompt": "Work",
        "repo_path": str(repo),
        "provider": "script",
        "agent_options": {
            "scenario": {"steps": [{"write": {"path": "x.txt", "content": "x"}}]},
            "permission_mode": "default",
        },
        **extra,
    }
    resp = await api.post("/api/runs", json=body)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


async def pending_approval(api: Api, run_id: str) -> dict[str, Any]:
    with anyio.fail_after(20):
        while True:
            rows = (await api.get(f"/api/approvals?status=pending&run_id={run_id}")).json()
            if rows["data"]:
                return dict(rows["data"][0])
            await anyio.sleep(0.02)


async def outbox(api: Api, run_id: str) -> list[dict[str, Any]]:
    return list((await api.get(f"/api/runs/{run_id}/notifications")).json()["data"])


async def wait_outbox(
    api: Api, run_id: str, pred: Any, timeout: float = 30
) -> list[dict[str, Any]]:
    with anyio.fail_after(timeout):
        while True:
            rows = await outbox(api, run_id)
            if pred(rows):
                return rows
            await anyio.sleep(0.02)


async def add_channel(api: Api, kind: str, url: str) -> dict[str, Any]:
    resp = await api.post(
        "/api/notifications/channels", json={"kind": kind, "name": kind, "config": {"url": url}}
    )
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


async def test_approval_reaches_every_channel_and_the_one_tap_page_answers_it(
    napi: Api, receivers: Receivers, git_repo: Path
) -> None:
    api = napi
    key = (await api.get("/api/notifications/vapid-key")).json()["public_key"]
    assert len(key) == 87  # an uncompressed P-256 point, URL-safe base64
    sub = receivers.browser_subscription("phone")
    assert (await api.post("/api/notifications/subscribe", json=sub)).status_code == 201
    hook = await add_channel(api, "webhook", f"{receivers.base}/hook")
    assert hook["secret"].startswith("whsec_")
    await add_channel(api, "slack", f"{receivers.base}/slack")
    await add_channel(api, "discord", f"{receivers.base}/discord")
    listed = (await api.get("/api/notifications/channels")).json()["data"]
    assert {c["kind"] for c in listed} == {"webhook", "slack", "discord"}
    assert all(c["secret"] is None for c in listed)  # shown once, at creation

    run_id = await ask_run(api, git_repo)
    approval = await pending_approval(api, run_id)

    (push,) = await receivers.wait_for("/push/phone")
    assert push.message is not None and push.vapid_claims is not None
    assert push.vapid_claims["aud"] == receivers.base
    assert push.message["kind"] == "approval"
    assert push.message["approval_id"] == approval["id"]
    assert push.message["url"] == f"http://codeyard/runs/{run_id}"
    assert push.headers["urgency"] == "high"
    topic = push.headers["topic"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,32}", topic)

    (signed,) = await receivers.wait_for("/hook")
    payload = Webhook(hook["secret"]).verify(signed.body, signed.headers)
    assert payload["type"] == "approval" and payload["data"]["approval_id"] == approval["id"]
    (slack,) = await receivers.wait_for("/slack")
    (discord,) = await receivers.wait_for("/discord")
    assert "needs approval" in slack.json()["text"]
    assert discord.json()["embeds"][0]["url"] == f"http://codeyard/runs/{run_id}"
    for chat in (signed, slack, discord):  # approval capabilities stay on the user's devices
        assert b"action" not in chat.body

    token = push.message["action_token"]
    assert push.message["action_url"].endswith(f"/api/notifications/actions/{token}")
    page = await api.get(f"/api/notifications/actions/{token}", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "Approve" in page.text and "x.txt" in page.text
    public = {"Authorization": ""}  # the token is the permission: no bearer needed
    answered = await api.post(
        f"/api/notifications/actions/{token}",
        content="decision=approved",
        headers={**public, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answered.status_code == 200 and "Approved" in answered.text
    row = (await api.get(f"/api/approvals?run_id={run_id}")).json()["data"][0]
    assert row["status"] == "approved" and row["decided_by"] == "admin via notification"
    await api.wait_status(run_id, "review")

    again = await api.post(
        f"/api/notifications/actions/{token}", json={"decision": "rejected"}, headers=public
    )
    assert again.status_code == 403 and "already used" in again.json()["detail"]

    # The alert is replaced on the phone: the same Topic, now saying it was answered.
    pushes = await receivers.wait_for("/push/phone", 2)
    resolved = [p for p in pushes if p.message and p.message["kind"] == "approval.resolved"]
    assert resolved and resolved[0].headers["topic"] == topic
    assert "admin via notification" in resolved[0].message["body"]  # type: ignore[index]
    rows = await wait_outbox(api, run_id, lambda rs: all(r["status"] == "sent" for r in rs))
    assert len({(r["event_id"], r["target"], r["user_id"]) for r in rows}) == len(rows)


async def test_a_stale_alert_is_never_sent(
    tmp_path: Path, receivers: Receivers, git_repo: Path
) -> None:
    async for api in open_api(notify_settings(tmp_path, grace=1.5)):
        await api.post("/api/notifications/subscribe", json=receivers.browser_subscription("p"))
        run_id = await ask_run(api, git_repo)
        approval = await pending_approval(api, run_id)
        resp = await api.post(
            f"/api/approvals/{approval['id']}/resolve", json={"decision": "approved"}
        )
        assert resp.status_code == 200
        rows = await wait_outbox(
            api,
            run_id,
            lambda rs: any(r["kind"] == "approval" and r["status"] == "skipped" for r in rs),
        )
        (alert,) = [r for r in rows if r["kind"] == "approval"]
        assert "answered" in alert["last_error"]
        assert not [r for r in receivers.at("/push/p") if r.message["kind"] == "approval"]  # type: ignore[index]


async def test_retries_only_429_and_5xx_and_prunes_gone_subscriptions(
    napi: Api, receivers: Receivers, git_repo: Path
) -> None:
    api = napi
    receivers.responses["/hook"] = [503, 429, 200]
    receivers.responses["/slack"] = [400]
    receivers.responses["/push/gone"] = [410]
    await add_channel(api, "webhook", f"{receivers.base}/hook")
    await add_channel(api, "slack", f"{receivers.base}/slack")
    await api.post("/api/notifications/subscribe", json=receivers.browser_subscription("gone"))
    run_id = await ask_run(api, git_repo)
    await pending_approval(api, run_id)
    rows = await wait_outbox(
        api, run_id, lambda rs: len(rs) == 3 and all(r["status"] in ("sent", "failed") for r in rs)
    )
    by_target = {r["target"].partition(":")[0]: r for r in rows}
    statuses = sorted((r["status"], r["attempts"]) for r in rows)
    assert statuses == [("failed", 1), ("failed", 1), ("sent", 3)], rows
    assert len(await receivers.wait_for("/hook", 3)) == 3
    assert len(receivers.at("/slack")) == 1  # 400: not retried
    assert "webpush" in by_target
    subs = (await api.get("/api/notifications/subscriptions")).json()["data"]
    assert subs == []  # 410: pruned
    log = (await api.get("/api/notifications/deliveries")).json()["data"]
    assert sorted(d["status_code"] for d in log) == [200, 400, 410, 429, 503]


async def test_a_restart_mid_delivery_delivers_exactly_once(
    tmp_path: Path, receivers: Receivers, git_repo: Path
) -> None:
    settings = notify_settings(tmp_path, grace=0)
    receivers.stall["/hook"] = 30.0  # the first attempt hangs until the server goes away
    async for api in open_api(settings):
        hook = await add_channel(api, "webhook", f"{receivers.base}/hook")
        run_id = await ask_run(api, git_repo)
        await pending_approval(api, run_id)
        await receivers.wait_for("/hook")
        rows = await outbox(api, run_id)
        assert [r["status"] for r in rows] == ["sending"]
    # Killed mid-request: the receiver got the message but Codeyard never saw the answer.
    async for api in open_api(settings):
        rows = await wait_outbox(api, run_id, lambda rs: rs and rs[0]["status"] == "sent")
        assert len(rows) == 1 and rows[0]["attempts"] == 2
        got = await receivers.wait_for("/hook", 2)
        ids = {r.headers["webhook-id"] for r in got}
        assert len(ids) == 1  # the same message id: the receiver keeps exactly one
        for r in got:
            Webhook(hook["secret"]).verify(r.body, r.headers)
        await anyio.sleep(0.3)
        assert len(receivers.at("/hook")) == 2 and len(await outbox(api, run_id)) == 1


async def test_preferences_quiet_hours_and_the_run_notify_flag(
    napi: Api, receivers: Receivers, git_repo: Path
) -> None:
    api = napi
    await add_channel(api, "slack", f"{receivers.base}/slack")
    prefs = {"events": ["run.failed"], "timezone": "Europe/Paris"}
    assert (
        await api.request("PUT", "/api/notifications/preferences", json=prefs)
    ).status_code == 200
    run_id = await ask_run(api, git_repo)
    await pending_approval(api, run_id)
    await api.app.state.subscribers.notifications.notifier.catch_up()
    assert await outbox(api, run_id) == []  # approvals are not among the chosen kinds

    muted = await ask_run(api, git_repo, draft=True)
    flag = await api.post(f"/api/runs/{muted}/notify", json={"notify": False})
    assert flag.status_code == 200 and flag.json()["notify"] is False
    assert (await api.post(f"/api/runs/{muted}/start")).status_code == 200
    await pending_approval(api, muted)
    await api.app.state.subscribers.notifications.notifier.catch_up()
    assert await outbox(api, muted) == []

    quiet = {
        "events": ["approval"],
        "quiet_start": "00:00",
        "quiet_end": "23:59",
        "timezone": "UTC",
    }
    await api.request("PUT", "/api/notifications/preferences", json=quiet)
    third = await ask_run(api, git_repo)
    await pending_approval(api, third)
    rows = await wait_outbox(
        api, third, lambda rs: rs and rs[0]["status"] not in ("pending", "sending")
    )
    if rows[0]["status"] == "skipped":
        assert rows[0]["last_error"] == "quiet hours"
    else:  # the one minute outside 00:00-23:59
        assert rows[0]["status"] == "sent"

    bad = await api.request(
        "PUT", "/api/notifications/preferences", json={"quiet_start": "22:00", "timezone": "UTC"}
    )
    assert bad.status_code == 400 and "quiet_end" in bad.json()["detail"]


async def test_devices_and_send_test_through_the_relay(
    tmp_path: Path, receivers: Receivers
) -> None:
    settings = notify_settings(tmp_path, push_relay_url=receivers.base, push_relay_token="relay-t")
    async for api in open_api(settings):
        fcm = await api.post(
            "/api/devices", json={"platform": "fcm", "token": "fcm-token-123", "name": "Pixel"}
        )
        assert fcm.status_code == 201 and "token" not in fcm.json()
        apns = await api.post("/api/devices", json={"platform": "apns", "token": "a" * 64})
        tested = await api.post(f"/api/devices/{fcm.json()['id']}/test")
        assert tested.json()["ok"] is True
        (sent,) = await receivers.wait_for("/fcm/v1/send")
        assert sent.headers["authorization"] == "Bearer relay-t"
        assert sent.json()["message"]["token"] == "fcm-token-123"
        assert (await api.post(f"/api/devices/{apns.json()['id']}/test")).json()["ok"] is True
        (apple,) = await receivers.wait_for(f"/apns/3/device/{'a' * 64}")
        assert apple.json()["aps"]["alert"]["title"] == "Codeyard test notification"
        assert apple.headers["apns-push-type"] == "alert"
        listed = (await api.get("/api/devices")).json()["data"]
        assert {d["platform"] for d in listed} == {"fcm", "apns"}
        assert (await api.delete(f"/api/devices/{fcm.json()['id']}")).status_code == 204
        assert (await api.delete(f"/api/devices/{fcm.json()['id']}")).status_code == 404
        log = (await api.get("/api/notifications/deliveries")).json()["data"]
        assert [d["ok"] for d in log] == [True, True]


async def test_bad_input_names_the_fix(napi: Api) -> None:
    api = napi
    bad_kind = await api.post(
        "/api/notifications/channels", json={"kind": "pager", "name": "x", "config": {}}
    )
    assert bad_kind.status_code == 400 and "webhook" in bad_kind.json()["detail"]
    bad_url = await api.post(
        "/api/notifications/channels",
        json={"kind": "slack", "name": "x", "config": {"url": "ftp://x"}},
    )
    assert bad_url.status_code == 400 and "http(s) URL" in bad_url.json()["detail"]
    bad_sub = await api.post(
        "/api/notifications/subscribe",
        json={"endpoint": "javascript:alert(1)", "keys": {"p256dh": "x" * 20, "auth": "y" * 8}},
    )
    assert bad_sub.status_code == 400
    forged = await api.post(
        "/api/notifications/actions/eyJhIjoiYXByIn0.bad",
        json={"decision": "approved"},
        headers={"Authorization": ""},
    )
    assert forged.status_code == 403
    assert (
        await api.get("/api/notifications/channels", headers={"Authorization": ""})
    ).status_code == 401


async def test_a_question_and_the_end_of_a_turn_are_notified(
    napi: Api, receivers: Receivers, git_repo: Path
) -> None:
    api = napi
    await add_channel(api, "discord", f"{receivers.base}/discord")
    body = {
        "prompt": "Work",
        "repo_path": str(git_repo),
        "provider": "script",
        "agent_options": {"scenario": {"steps": [{"ask": "Which greeting?"}, {"say": "ok"}]}},
    }
    run_id = (await api.post("/api/runs", json=body)).json()["id"]
    (asked,) = await receivers.wait_for("/discord")
    assert "is asking you something" in asked.json()["content"]
    await api.wait_status(run_id, "waiting")
    assert (
        await api.post(f"/api/runs/{run_id}/messages", json={"text": "Hello"})
    ).status_code < 300
    got = await receivers.wait_for("/discord", 2)
    assert "ready for review" in got[1].json()["content"]
    kinds = [r["kind"] for r in await outbox(api, run_id)]
    assert kinds == ["run.input", "run.finished"]


async def test_a_database_from_before_notifications_does_not_announce_its_past(
    tmp_path: Path, receivers: Receivers, git_repo: Path
) -> None:
    settings = notify_settings(tmp_path)
    async for api in open_api(settings):
        await add_channel(api, "slack", f"{receivers.base}/slack")
        await api.app.state.subscribers.notifications.notifier.stop()

        async def forget(tx: Any) -> None:  # as if the notifier had never run on this database
            await tx.conn.execute(schema.consumer_cursors.delete())

        await api.services.writer.run(forget)
        old = await ask_run(api, git_repo)
        await pending_approval(api, old)
    async for api in open_api(settings):
        new = await ask_run(api, git_repo)
        await pending_approval(api, new)
        await wait_outbox(api, new, lambda rs: rs and rs[0]["status"] == "sent")
        assert await outbox(api, old) == []
        assert len(receivers.at("/slack")) == 1


async def test_old_finished_rows_are_pruned_and_pending_ones_kept(napi: Api) -> None:
    api = napi
    out = schema.notification_outbox
    base = {
        "run_id": "run_x",
        "user_id": "",
        "target": "channel:x",
        "kind": "approval",
        "tag": "t",
        "payload": {},
        "attempts": 1,
        "next_attempt_at": "2999-01-01T00:00:00.000Z",  # not due: the worker leaves it alone
    }

    async def seed(tx: Any) -> None:
        await tx.conn.execute(
            out.insert(),
            [
                {**base, "event_id": 1, "status": "sent", "created_at": "2020-01-01T00:00:00.000Z"},
                {
                    **base,
                    "event_id": 2,
                    "status": "pending",
                    "created_at": "2020-01-01T00:00:00.000Z",
                },
                {**base, "event_id": 3, "status": "sent", "created_at": "2999-01-01T00:00:00.000Z"},
            ],
        )

    await api.services.writer.run(seed)
    assert await api.app.state.subscribers.notifications.worker.prune() == 1
    async with api.services.engine.connect() as conn:
        left = sorted(r.event_id for r in (await conn.execute(out.select())).all())
    assert left == [2, 3]


async def test_each_user_hears_about_their_own_runs_and_answers_as_themselves(
    napi: Api, receivers: Receivers, git_repo: Path
) -> None:
    api = napi
    admin = await add_user(api, "ada", "admin")
    await add_user(api, "max", "member")
    await add_user(api, "eve", "member")
    scopes = ["runs:read", "runs:write", "runs:control", "approvals:resolve"]
    clients = {}
    for name in ("ada", "max", "eve"):
        client = bearer(api, await token_of(api, name, scopes if name != "ada" else ["admin"]))
        clients[name] = client
        sub = receivers.browser_subscription(name)
        assert (await client.post("/api/notifications/subscribe", json=sub)).status_code == 201
    try:
        project = await api.post(
            "/api/projects", json={"name": "P", "repos": [{"path": str(git_repo)}]}
        )
        assert project.status_code == 201, project.text
        body = {
            "prompt": "Work",
            "project_id": project.json()["id"],
            "provider": "script",
            "agent_options": {
                "scenario": {"steps": [{"write": {"path": "m.txt", "content": "m"}}]},
                "permission_mode": "default",
            },
        }
        resp = await clients["max"].post("/api/runs", json=body)
        assert resp.status_code == 201, resp.text
        run_id = resp.json()["id"]
        (to_max,) = await receivers.wait_for("/push/max")
        (to_ada,) = await receivers.wait_for("/push/ada")  # admins hear about every run
        await anyio.sleep(0.3)
        assert receivers.at("/push/eve") == []  # another member's run: nothing
        assert to_ada.message["approval_id"] == to_max.message["approval_id"]  # type: ignore[index]
        rows = await outbox(api, run_id)
        users = {r["user_id"] for r in rows if r["kind"] == "approval"}
        assert admin["id"] in users and len(users) == 2  # max and ada; not eve
        answered = await anonymous(api).post(
            to_max.message["action_url"].replace("http://codeyard", ""),  # type: ignore[index]
            json={"decision": "approved"},
        )
        assert answered.status_code == 200, answered.text
        assert answered.json()["decided_by"] == "max via notification"
        late = await anonymous(api).post(
            to_ada.message["action_url"].replace("http://codeyard", ""),  # type: ignore[index]
            json={"decision": "rejected"},
        )
        assert late.status_code == 409  # first answer wins, whatever the channel
    finally:
        for client in clients.values():
            await client.aclose()
