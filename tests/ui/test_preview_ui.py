"""Host-mode preview in Chromium: a dev server started from the run's terminal on ``$PORT``,
opened from the terminal view's preview link; its absolute asset path (``/app.js``) loads on
the preview origin (``<run>-0.preview.localhost``), which the path mode cannot do."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.conftest import make_repo
from tests.support.server import ServerProcess

pytestmark = pytest.mark.slow

PAGE = "<!doctype html><title>loading</title><script src='/app.js'></script><p id=x>page</p>"
SCRIPT = "document.title = 'asset ' + (40 + 2);"


def test_host_mode_preview_keeps_absolute_assets(
    server: ServerProcess, browser: Browser, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "site", {"index.html": PAGE, "app.js": SCRIPT})
    headers = {"Authorization": f"Bearer {server.token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
        body = {
            "prompt": "x",
            "repo_path": str(repo),
            "provider": "script",
            "agent_options": {"scenario": {"steps": []}},
        }
        run = client.post("/api/runs", json=body).json()
        for _ in range(400):
            if client.get(f"/api/runs/{run['id']}").json()["status"] == "review":
                break
            time.sleep(0.05)
    page = browser.new_page()
    page.goto(f"{server.url}/login#token={server.token}")
    page.wait_for_url(f"{server.url}/")
    page.goto(f"{server.url}/runs/{run['number']}/terminal")
    expect(page.get_by_test_id("terminal-state")).to_have_text("open", timeout=20_000)
    page.locator(".xterm").click()
    page.keyboard.type("python3 -m http.server $PORT --bind 127.0.0.1")
    page.keyboard.press("Enter")
    expect(page.locator(".xterm-rows")).to_contain_text("Serving HTTP", timeout=15_000)
    with page.expect_popup() as popup_info:
        page.get_by_test_id("preview-links").get_by_role("button").first.click()
    preview = popup_info.value
    expect(preview).to_have_title("asset 42", timeout=15_000)
    assert f"{run['number']}-0.preview.localhost" in preview.url
    page.keyboard.press("Control+C")
    page.close()
