"""Slack without a public URL (Socket Mode) and Slack messages that follow the answer.

The fake Slack runs on loopback (aiohttp): the Web API methods Codeyard calls
(``apps.connections.open`` → a ``ws://`` URL, ``chat.postMessage``, ``chat.update``,
``chat.postEphemeral``, each checking its bearer token) and the Socket Mode WebSocket itself.
The test plays Slack's side of a click: it sends an ``interactive`` envelope down that socket
and waits for Codeyard's acknowledgement, as Slack would. Codeyard's side is the real
``slack_sdk`` Socket Mode client, in the app's elected notifications singleton.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiohttp import WSMsgType, web

from tests.conftest import Api, open_api
from tests.integration.test_notifications import ask_run, notify_settings, pending_approval

pytestmark = pytest.mark.anyio
BOT = "xoxb-1111-2222-codeyardtest"
APP = "xapp-1-A0CODEYARD-3333-codeyardtest"
SLACK_CHANNEL = "C0CODEYARD"
APPROVER = "U0APPROVER1"


@dataclass
class FakeSlack:
    """Slack's Web API and Socket Mode endpoint, on 127.0.0.1."""

    base: str = ""
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    acks: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    sockets: list[web.WebSocketResponse] = field(default_factory=list)
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    async def api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        token = request.headers.get("Authorization", "")
        if method == "apps.connections.open":
            if token != f"Bearer {APP}":
                return web.json_response({"ok": False, "error": "invalid_auth"})
            return web.json_response({"ok": True, "url": f"{self.base.replace('http', 'ws')}/link"})
        if token != f"Bearer {BOT}":
            return web.json_response({"ok": False, "error": "not_authed"})
        body = await request.json()
        self.calls.append((method, body))
        self.changed.set()
        if method == "chat.postMessage":
            ts = f"1700000000.{len(self.calls):06d}"
            return web.json_response({"ok": True, "channel": body["channel"], "ts": ts})
        return web.json_response({"ok": True})

    async def link(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        await ws.send_json({"type": "hello", "num_connections": 1})
        self.connected.set()
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                await self.acks.put(json.loads(msg.data))
        self.closed.set()
        return ws

    def posted(self) -> list[dict[str, Any]]:
        return [b for m, b in self.calls if m == "chat.postMessage"]

    async def wait_call(self, method: str, n: int = 1, timeout: float = 30) -> list[dict[str, Any]]:
        with anyio.fail_after(timeout):
            while True:
                found = [b for m, b in self.calls if m == method]
                if len(found) >= n:
                    return found
                self.changed.clear()
                await self.changed.wait()

    async def click(self, envelope_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send an interactive envelope and return Codeyard's acknowledgement."""
        envelope = {
            "envelope_id": envelope_id,
            "type": "interactive",
            "accepts_response_payload": False,
            "payload": payload,
        }
        await next(ws for ws in self.sockets if not ws.closed).send_json(envelope)  # the first open
        with anyio.fail_after(30):
            return await self.acks.get()


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    fake = FakeSlack()
    app = web.Application()
    app.router.add_post("/api/{method}", fake.api)
    app.router.add_get("/link", fake.link)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    fake.base = f"http://127.0.0.1:{port}"
    try:
        yield fake
    finally:
        for ws in fake.sockets:
            with anyio.move_on_after(2):
                await ws.close()
        with anyio.move_on_after(5):
            await runner.cleanup()


@pytest.fixture
async def sapi(tmp_path: Path, slack: FakeSlack) -> AsyncIterator[Api]:
    settings = notify_settings(tmp_path, slack_api_url=f"{slack.base}/api/")
    async for api in open_api(settings):
        yield api


def has_buttons(message: dict[str, Any]) -> bool:
    return any(b["type"] == "actions" for b in message["blocks"])


def buttons(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    (actions,) = [b for b in message["blocks"] if b["type"] == "actions"]
    return {e["action_id"]: e for e in actions["elements"]}


def block_actions(button: dict[str, Any], user: str, ts: str) -> dict[str, Any]:
    return {
        "type": "block_actions",
        "user": {"id": user, "username": "someone"},
        "channel": {"id": SLACK_CHANNEL},
        "container": {"type": "message", "channel_id": SLACK_CHANNEL, "message_ts": ts},
        "message": {"ts": ts},
        "actions": [{"action_id": button["action_id"], "value": button["value"]}],
    }


async def test_a_click_over_socket_mode_answers_the_approval_once(
    sapi: Api, slack: FakeSlack, git_repo: Path
) -> None:
    api = sapi
    config = {"bot_token": BOT, "app_token": APP, "channel": SLACK_CHANNEL, "approvers": [APPROVER]}
    made = await api.post(
        "/api/notifications/channels", json={"kind": "slack", "name": "team", "config": config}
    )
    assert made.status_code == 201, made.text
    assert BOT not in made.text and APP not in made.text  # sealed, never shown
    channel = made.json()["id"]
    with anyio.fail_after(30):  # Codeyard opened the socket with the app token
        await slack.connected.wait()
    # Slack drops Socket Mode connections now and then: the client opens a new one.
    slack.connected.clear()
    await slack.sockets[0].close()
    with anyio.fail_after(15):
        await slack.connected.wait()
    assert len(slack.sockets) == 2

    run_id = await ask_run(api, git_repo)
    approval = await pending_approval(api, run_id)
    (posted,) = await slack.wait_call("chat.postMessage")
    assert posted["channel"] == SLACK_CHANNEL
    btn = buttons(posted)
    ts = "1700000000.000001"

    # The Request URL refuses a Socket Mode channel's clicks (no signing secret to check).
    refused = await api.post(
        f"/api/notifications/slack/{channel}/interactions",
        content=b"payload=%7B%7D",
        headers={"Authorization": "", "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert refused.status_code == 401

    # Not an approver: acknowledged, nothing answered, only the clicker is told.
    ack = await slack.click("env-1", block_actions(btn["codeyard_approve"], "U0STRANGER", ts))
    assert ack == {"envelope_id": "env-1"}
    (told,) = await slack.wait_call("chat.postEphemeral")
    assert told["user"] == "U0STRANGER" and "not an approver" in told["text"]
    rows = (await api.get(f"/api/approvals?run_id={run_id}")).json()["data"]
    assert rows[0]["status"] == "pending"

    ack = await slack.click("env-2", block_actions(btn["codeyard_approve"], APPROVER, ts))
    assert ack == {"envelope_id": "env-2"}
    (updated, *_) = await slack.wait_call("chat.update")
    assert updated["ts"] == ts and updated["text"].startswith(f"Approved by <@{APPROVER}>")
    assert all(b["type"] != "actions" for b in updated["blocks"])  # the buttons are gone
    row = (await api.get(f"/api/approvals?run_id={run_id}")).json()["data"][0]
    assert row["id"] == approval["id"] and row["status"] == "approved"
    assert row["decided_by"] == f"admin via Slack ({APPROVER})"
    await api.wait_status(run_id, "review")

    # Single use: the same message's Reject button (same token) does nothing now.
    ack = await slack.click("env-3", block_actions(btn["codeyard_reject"], APPROVER, ts))
    assert ack == {"envelope_id": "env-3"}
    told_again = (await slack.wait_call("chat.postEphemeral", 2))[1]
    assert told_again["text"].startswith("Not answered")
    row = (await api.get(f"/api/approvals?run_id={run_id}")).json()["data"][0]
    assert row["status"] == "approved"

    # Removing the channel closes its connection (on this server: at once).
    slack.closed.clear()  # (set when the first connection was dropped)
    assert (await api.delete(f"/api/notifications/channels/{channel}")).status_code == 204
    with anyio.fail_after(30):
        await slack.closed.wait()


async def test_an_approval_answered_in_the_app_updates_the_slack_message(
    sapi: Api, slack: FakeSlack, git_repo: Path
) -> None:
    api = sapi
    # Socket Mode needs the bot token too; a bot channel needs a Slack channel id.
    for bad, hint in (
        ({"app_token": APP, "approvers": [APPROVER], "url": "https://x"}, "bot_token"),
        ({"bot_token": BOT}, "channel"),
        ({"bot_token": "xoxp-user-token-123456", "channel": SLACK_CHANNEL}, "xoxb"),
    ):
        resp = await api.post(
            "/api/notifications/channels", json={"kind": "slack", "name": "x", "config": bad}
        )
        assert resp.status_code == 400 and hint in resp.json()["detail"], resp.text
    assert (await api.get("/api/notifications/channels")).json()["data"] == []

    config = {"bot_token": BOT, "channel": SLACK_CHANNEL}  # posts and edits; no buttons
    made = await api.post(
        "/api/notifications/channels", json={"kind": "slack", "name": "team", "config": config}
    )
    assert made.status_code == 201, made.text
    run_id = await ask_run(api, git_repo)
    approval = await pending_approval(api, run_id)
    (posted,) = await slack.wait_call("chat.postMessage")
    assert all(b["type"] != "actions" for b in posted["blocks"])
    ts = "1700000000.000001"

    resolved = await api.post(
        f"/api/approvals/{approval['id']}/resolve", json={"decision": "rejected"}
    )
    assert resolved.status_code == 200, resolved.text
    (updated,) = await slack.wait_call("chat.update")
    assert updated["channel"] == SLACK_CHANNEL and updated["ts"] == ts
    assert "rejected" in updated["text"]
    assert len([m for m, _ in slack.calls if m == "chat.postMessage"]) == 1  # edited, not reposted


async def test_two_channels_of_one_slack_app_each_answer_clicks_from_either_connection(
    sapi: Api, slack: FakeSlack, git_repo: Path
) -> None:
    """Slack hands an envelope to any one open connection of the app: a click on channel A's
    message may arrive on channel B's connection, and must still be answered (for A)."""
    api = sapi
    for name, where in (("a", "C0ALPHA"), ("b", "C0BRAVO")):
        config = {"bot_token": BOT, "app_token": APP, "channel": where, "approvers": [APPROVER]}
        made = await api.post(
            "/api/notifications/channels", json={"kind": "slack", "name": name, "config": config}
        )
        assert made.status_code == 201, made.text
    with anyio.fail_after(30):
        while len(slack.sockets) < 2:
            await anyio.sleep(0.02)
    # Both clicks go down the first connection: one of them belongs to the other channel.
    for n, where in ((2, "C0ALPHA"), (4, "C0BRAVO")):
        run_id = await ask_run(api, git_repo)
        await pending_approval(api, run_id)
        with anyio.fail_after(30):  # the alert, on both channels (other messages follow)
            while len(alerts := [m for m in slack.posted() if has_buttons(m)]) < n:
                await anyio.sleep(0.02)
        (mine,) = [m for m in alerts[-2:] if m["channel"] == where]
        click = block_actions(buttons(mine)["codeyard_approve"], APPROVER, "1.0")
        assert await slack.click(f"env-{where}", click) == {"envelope_id": f"env-{where}"}
        with anyio.fail_after(30):
            while (await api.get(f"/api/approvals?run_id={run_id}")).json()["data"][0][
                "status"
            ] != "approved":
                await anyio.sleep(0.02)
    assert not [b for m, b in slack.calls if m == "chat.postEphemeral"]
