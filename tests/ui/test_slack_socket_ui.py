"""Notification settings in Chromium add a Slack channel with a bot token and an app-level
token; the real server process (not the in-process app) then opens the Socket Mode connection
to a fake Slack on loopback and its "Send test" is posted with chat.postMessage by the bot.

The fake Slack (aiohttp, in its own thread and event loop) answers ``apps.connections.open``
with a ``ws://`` URL to itself and checks each bearer token.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from playwright.sync_api import Browser, expect

from tests.support.server import ServerProcess
from tests.ui.test_notifications_ui import sign_in

pytestmark = pytest.mark.slow
BOT = "xoxb-1111-2222-codeyardui"
APP = "xapp-1-A0CODEYARD-3333-codeyardui"


class ThreadSlack:
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.connected = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.base = ""
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        assert ready.wait(10), "the fake Slack did not start"

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/link", self._link)
        self.runner = web.AppRunner(app)
        self.loop.run_until_complete(self.runner.setup())
        self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", 0).start())
        self.base = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        ready.set()
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    async def _api(self, request: web.Request) -> web.Response:
        method, token = request.match_info["method"], request.headers.get("Authorization")
        if method == "apps.connections.open":
            ok = token == f"Bearer {APP}"
            return web.json_response({"ok": ok, "url": f"{self.base.replace('http', 'ws')}/link"})
        if token != f"Bearer {BOT}":
            return web.json_response({"ok": False, "error": "not_authed"})
        body = await request.json()
        self.calls.append((method, body))
        return web.json_response({"ok": True, "channel": body.get("channel"), "ts": "1.000001"})

    async def _link(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_json({"type": "hello"})
        self.connected.set()
        async for _ in ws:
            pass
        return ws

    def close(self) -> None:
        fut = asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop)
        try:
            fut.result(timeout=5)
        except Exception:  # teardown is best effort, bounded
            fut.cancel()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


@pytest.fixture
def slack() -> Iterator[ThreadSlack]:
    fake = ThreadSlack()
    try:
        yield fake
    finally:
        fake.close()


def test_settings_add_a_socket_mode_slack_channel_and_the_server_connects(
    browser: Browser, tmp_path: Path, slack: ThreadSlack
) -> None:
    srv = ServerProcess(tmp_path / "data", env={"CODEYARD_SLACK_API_URL": f"{slack.base}/api/"})
    srv.start()
    page = browser.new_page()
    try:
        sign_in(page, srv)
        page.goto(f"{srv.url}/settings/notifications")
        form = page.get_by_label("Channels")
        form.get_by_label("Kind").select_option("slack")
        form.get_by_label("Name").fill("socket")
        form.get_by_label("Slack bot token").fill(BOT)
        form.get_by_label("Slack channel id").fill("C0CODEYARD")
        form.get_by_label("Slack app-level token").fill(APP)
        form.get_by_label("Slack approvers").fill("U0APPROVER1")
        form.get_by_role("button", name="Add").click()
        expect(form.get_by_label("Slack Socket Mode set-up")).to_contain_text("no public URL")
        assert slack.connected.wait(15), "the server never opened the Socket Mode connection"
        row = form.locator("div.row", has=page.get_by_text("socket", exact=True))
        row.get_by_role("button", name="Send test").click()
        expect(row.get_by_test_id("test-result")).to_have_text("Delivered")
        ((method, body),) = slack.calls
        assert method == "chat.postMessage" and body["channel"] == "C0CODEYARD"
        assert "Codeyard test notification" in body["text"]
    finally:
        page.close()
        srv.stop()
