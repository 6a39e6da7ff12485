"""The sandbox in Chromium: switched off by an admin, every page says so in a banner that
cannot be dismissed, and the settings page shows the switch and the warning; back on, the
banner is gone. Real server (``codeyard serve``), real browser, real bubblewrap."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Browser, expect

from codeyard.sandbox import probe
from tests.support.server import ServerProcess

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not probe(None).ok, reason=f"no sandbox here: {probe(None).problem}"),
]


def put_sandbox(server: ServerProcess, mode: str) -> None:
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}, timeout=30
    ) as client:
        resp = client.put("/api/settings", json={"sandbox": mode})
        assert resp.status_code == 200, resp.text


def test_the_sandbox_off_is_loud_on_every_page(browser: Browser, server: ServerProcess) -> None:
    page = browser.new_page()
    page.goto(f"{server.url}/login#token={server.token}")
    expect(page.get_by_role("heading", name="Runs")).to_be_visible()
    expect(page.get_by_test_id("sandbox-banner")).to_have_count(0)

    put_sandbox(server, "off")
    page.goto(f"{server.url}/")
    banner = page.get_by_test_id("sandbox-banner")
    expect(banner).to_contain_text("SANDBOX OFF")
    page.goto(f"{server.url}/settings/general")
    expect(page.get_by_test_id("sandbox-banner")).to_be_visible()
    expect(page.get_by_label("Agent sandbox")).to_have_value("off")

    page.get_by_label("Agent sandbox").select_option("on")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_test_id("sandbox-banner")).to_have_count(0)
    page.close()
