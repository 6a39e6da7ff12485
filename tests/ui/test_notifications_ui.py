"""Notifications and analytics in Chromium: the service worker shows a push (delivered through
the DevTools protocol, since headless Chromium has no vendor push service here) with
Approve/Reject actions and replaces it when the approval is answered; the one-tap page answers
an approval on a phone viewport; the Analytics page and the notification settings work.

The action token comes the real way: the server pushes to a loopback fake push service, which
decrypts the payload with the subscription's keys (``tests/support/fake_receivers.py``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import make_repo
from tests.support.fake_receivers import Receivers, start_receivers
from tests.support.server import ServerProcess

pytestmark = pytest.mark.slow


@pytest.fixture
def receivers() -> Iterator[Receivers]:
    recv = start_receivers()
    yield recv
    recv.close()


@pytest.fixture
def notify_server(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path / "data", env={"CODEYARD_NOTIFY_GRACE_SECONDS": "0.2"})
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def api(server: ServerProcess) -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}, timeout=30
    )


def sign_in(page: Page, server: ServerProcess) -> None:
    page.goto(f"{server.url}/login#token={server.token}")
    expect(page.get_by_role("heading", name="Runs")).to_be_visible()


def wait_until(fn: Any, timeout: float = 20, page: Page | None = None) -> Any:
    """Poll ``fn``; with a ``page``, wait through Playwright so its events are dispatched."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        if page is not None:
            page.wait_for_timeout(50)
        else:
            time.sleep(0.05)
    raise AssertionError("timed out")


def start_asking_run(client: httpx.Client, repo: Path, steps: list[dict[str, Any]]) -> str:
    body = {
        "prompt": "Work",
        "repo_path": str(repo),
        "provider": "script",
        "agent_options": {"scenario": {"steps": steps}, "permission_mode": "default"},
    }
    resp = client.post("/api/runs", json=body)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def test_one_tap_page_answers_an_approval_on_a_phone(
    browser: Browser, notify_server: ServerProcess, receivers: Receivers, tmp_path: Path
) -> None:
    with api(notify_server) as client:
        sub = receivers.browser_subscription("phone")
        assert client.post("/api/notifications/subscribe", json=sub).status_code == 201
        run_id = start_asking_run(
            client, make_repo(tmp_path / "repo"), [{"write": {"path": "a.txt", "content": "a"}}]
        )
        push = wait_until(lambda: [r for r in receivers.at("/push/phone") if r.message])[0]
        assert push.message["kind"] == "approval"
        context = browser.new_context(viewport={"width": 390, "height": 844})  # no session
        page = context.new_page()
        try:
            page.goto(push.message["action_url"])
            expect(page.get_by_text("a.txt")).to_be_visible()
            page.get_by_role("button", name="Approve").click()
            expect(page.get_by_role("heading", name="Approved")).to_be_visible()
            page.goto(push.message["action_url"])  # single use
            expect(page.get_by_text("already used")).to_be_visible()
        finally:
            context.close()
        approvals = client.get(f"/api/approvals?run_id={run_id}").json()["data"]
        assert approvals[0]["status"] == "approved"
        assert approvals[0]["decided_by"] == "admin via notification"


def test_service_worker_shows_the_push_with_actions_and_replaces_it(
    browser: Browser, notify_server: ServerProcess
) -> None:
    context = browser.new_context()
    context.grant_permissions(["notifications"], origin=notify_server.url)
    page = context.new_page()
    try:
        sign_in(page, notify_server)
        page.wait_for_function(
            "navigator.serviceWorker.controller !== null || "
            "navigator.serviceWorker.ready.then(() => true)"
        )
        page.evaluate("navigator.serviceWorker.ready")
        cdp = context.new_cdp_session(page)
        registration = wait_until(
            lambda: page.evaluate(
                "navigator.serviceWorker.getRegistration()"
                ".then(r => r && r.active ? r.scope : null)"
            )
        )
        assert registration.startswith(notify_server.url)
        regs: list[str] = []
        cdp.on(
            "ServiceWorker.workerRegistrationUpdated",
            lambda e: regs.extend(r["registrationId"] for r in e["registrations"]),
        )
        cdp.send("ServiceWorker.enable")
        reg_id = wait_until(lambda: regs[-1] if regs else None, page=page)
        alert = {
            "kind": "approval",
            "title": "Run #1 needs approval",
            "body": "Write: a.txt",
            "tag": "approval-apr_x",
            "url": f"{notify_server.url}/runs/r1",
            "approval_id": "apr_x",
            "action_token": "t.k",
            "action_url": f"{notify_server.url}/api/notifications/actions/t.k",
        }
        cdp.send(
            "ServiceWorker.deliverPushMessage",
            {"origin": notify_server.url, "registrationId": reg_id, "data": json.dumps(alert)},
        )
        shown = wait_until(
            page=page,
            fn=lambda: page.evaluate(
                """navigator.serviceWorker.ready.then(r => r.getNotifications())
                 .then(ns => ns.map(n => ({title: n.title, tag: n.tag,
                   actions: n.actions.map(a => a.action), sticky: n.requireInteraction})))"""
            ),
        )
        assert shown == [
            {
                "title": "Run #1 needs approval",
                "tag": "approval-apr_x",
                "actions": ["approve", "reject"],
                "sticky": True,
            }
        ]
        resolved = {
            **alert,
            "kind": "approval.resolved",
            "title": "Run #1: approved",
            "body": "Answered by ada via notification",
        }
        del resolved["action_token"]
        cdp.send(
            "ServiceWorker.deliverPushMessage",
            {"origin": notify_server.url, "registrationId": reg_id, "data": json.dumps(resolved)},
        )
        replaced = wait_until(
            page=page,
            fn=lambda: [
                n
                for n in page.evaluate(
                    "navigator.serviceWorker.ready.then(r => r.getNotifications())"
                    ".then(ns => ns.map(n => ({title: n.title, tag: n.tag, n: n.actions.length})))"
                )
                if n["title"] == "Run #1: approved"
            ],
        )
        assert replaced == [{"title": "Run #1: approved", "tag": "approval-apr_x", "n": 0}]
        count = page.evaluate(
            "navigator.serviceWorker.ready.then(r => r.getNotifications()).then(ns => ns.length)"
        )
        assert count == 1  # the stale alert is gone: same tag
    finally:
        context.close()


def test_analytics_page_and_notification_settings(
    browser: Browser, notify_server: ServerProcess, receivers: Receivers, tmp_path: Path
) -> None:
    with api(notify_server) as client:
        budgets = client.put("/api/settings", json={"budgets": {"daily_usd": 5}})
        assert budgets.status_code == 200, budgets.text
        run_id = start_asking_run(
            client,
            make_repo(tmp_path / "repo"),
            [{"usage": {"input_tokens": 1200, "output_tokens": 300, "model": "claude-sonnet-4-5"}}],
        )
        wait_until(lambda: client.get(f"/api/runs/{run_id}").json()["status"] == "review")
        wait_until(lambda: client.get("/api/analytics/overview?range=today").json()["input_tokens"])
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        sign_in(page, notify_server)
        page.get_by_test_id("nav-analytics").click()
        expect(page.get_by_test_id("overview")).to_contain_text("1 ")
        expect(page.get_by_label("Cost by model")).to_contain_text("claude-sonnet-4-5")
        expect(page.locator("[data-testid=cost-chart] canvas")).to_be_visible()
        expect(page.get_by_test_id("burn-day")).to_contain_text("of $5")

        page.goto(f"{notify_server.url}/settings/notifications")
        form = page.get_by_label("Channels")
        form.get_by_label("Kind").select_option("slack")
        form.get_by_label("Name").fill("team")
        form.get_by_label("URL").fill(f"{receivers.base}/slack")
        form.get_by_role("button", name="Add").click()
        expect(form.get_by_text("team")).to_be_visible()
        form.get_by_role("button", name="Send test").click()
        expect(form.get_by_test_id("test-result")).to_have_text("Delivered")
        assert "Codeyard test notification" in receivers.at("/slack")[0].json()["text"]

        # Slack with buttons: the page says which Request URL to give the Slack app.
        form.get_by_label("Name").fill("buttons")
        form.get_by_label("URL").fill(f"{receivers.base}/slack2")
        form.get_by_label("Slack signing secret").fill("0123456789abcdef" * 2)
        form.get_by_label("Slack approvers").fill("U0APPROVER1, U0APPROVER2")
        form.get_by_role("button", name="Add").click()
        note = form.get_by_label("Slack buttons set-up")
        expect(note).to_contain_text(f"{notify_server.url}/api/notifications/slack/nch_")
        # Apprise: one URL (here ntfy on the loopback receiver), tested from its row.
        form.get_by_label("Kind").select_option("apprise")
        expect(form.get_by_label("Slack signing secret")).to_have_count(0)
        form.get_by_label("Name").fill("phone-ntfy")
        host = receivers.base.removeprefix("http://")
        form.get_by_label("URL").fill(f"ntfy://{host}/alerts")
        form.get_by_role("button", name="Add").click()
        row = form.locator("div.row", has=page.get_by_text("phone-ntfy", exact=True))
        expect(row).to_contain_text("apprise", timeout=15_000)  # Apprise loads its plug-ins
        row.get_by_role("button", name="Send test").click()
        expect(row.get_by_test_id("test-result")).to_have_text("Delivered")
        assert receivers.at("/")[0].json()["topic"] == "alerts"
        with api(notify_server) as client:
            kinds = [c["kind"] for c in client.get("/api/notifications/channels").json()["data"]]
        assert sorted(kinds) == ["apprise", "slack", "slack"]
    finally:
        context.close()
