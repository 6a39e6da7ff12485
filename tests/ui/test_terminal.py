"""The terminal journey in Chromium: open a run's terminal, run ``ls``, see the worktree's
files; reload and see the earlier output again; restart the server and still see the
scrollback (with the note that the program is gone)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import make_repo
from tests.support.server import ServerProcess
from tests.support.waits import scrollback_saved

pytestmark = pytest.mark.slow


def ready_run(server: ServerProcess, repo: Path) -> int:
    body = {
        "prompt": "make a file",
        "repo_path": str(repo),
        "provider": "script",
        "agent_options": {
            "scenario": {"steps": [{"write": {"path": "made-by-agent.txt", "content": "x"}}]}
        },
    }
    headers = {"Authorization": f"Bearer {server.token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
        run = client.post("/api/runs", json=body).json()
        for _ in range(400):
            if client.get(f"/api/runs/{run['id']}").json()["status"] == "review":
                return int(run["number"])
            time.sleep(0.05)
    raise AssertionError("the run never reached review")


def screen(page: Page) -> str:
    return page.locator(".xterm-rows").inner_text()


def test_terminal_survives_reload_and_restart(
    server: ServerProcess, browser: Browser, tmp_path: Path, screenshots: Path
) -> None:
    number = ready_run(server, make_repo(tmp_path / "site", {"README.md": "# site\n"}))
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    page.goto(f"{server.url}/login#token={server.token}")
    page.wait_for_url(f"{server.url}/")
    page.goto(f"{server.url}/runs/{number}")
    page.get_by_test_id("tab-terminal").click()
    expect(page.get_by_test_id("terminal-state")).to_have_text("open", timeout=20_000)

    page.locator(".xterm").click()
    page.keyboard.type("ls -1; echo LISTED-$((6*7))")
    page.keyboard.press("Enter")
    expect(page.locator(".xterm-rows")).to_contain_text("LISTED-42", timeout=30_000)
    assert "made-by-agent.txt" in screen(page) and "README.md" in screen(page)
    page.screenshot(path=str(screenshots / "terminal.png"))

    page.reload()
    expect(page.get_by_test_id("terminal-state")).to_have_text("open", timeout=20_000)
    expect(page.locator(".xterm-rows")).to_contain_text("LISTED-42", timeout=30_000)
    assert "made-by-agent.txt" in screen(page)

    # Killed once the scrollback file holds the output (a fixed 0.6 s for "a flush" was not
    # always one under load).
    deadline = time.monotonic() + 30
    while not scrollback_saved(server.data_dir / "terminals", b"LISTED-42"):
        assert time.monotonic() < deadline, "the scrollback was never saved"
        time.sleep(0.05)
    server.kill()
    server.start()
    # The open page reconnects on its own; a reload after the restart replays the scrollback.
    expect(page.get_by_test_id("terminal-ended")).to_contain_text(
        "server restarted", timeout=20_000
    )
    page.reload()
    expect(page.locator(".xterm-rows")).to_contain_text("LISTED-42", timeout=20_000)
    assert "made-by-agent.txt" in screen(page)
    expect(page.get_by_test_id("terminal-ended")).to_contain_text("program is gone")
    page.get_by_test_id("terminal-new").click()
    expect(page.get_by_test_id("terminal-state")).to_have_text("open", timeout=20_000)
    page.close()
