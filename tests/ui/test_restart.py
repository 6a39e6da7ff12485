"""A run page stays open while the server is killed and restarted mid-run: it reconnects with
Last-Event-ID, and the transcript ends complete, with every event exactly once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import make_repo
from tests.support.server import ServerProcess

pytestmark = pytest.mark.slow

LINES = 12
STEPS: list[dict[str, Any]] = [{"bash": "echo counting"}]
for i in range(1, LINES + 1):
    STEPS += [{"say": f"line {i} of {LINES}"}, {"sleep": 0.4}]

# Scroll the virtualized transcript from top to bottom, collecting each rendered item once by key.
COLLECT = """async (el) => {
  const seen = new Map();
  el.scrollTop = 0;
  for (let guard = 0; guard < 400; guard++) {
    await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
    for (const row of el.querySelectorAll('[data-item-key]')) {
      seen.set(row.dataset.itemKey, row.innerText);
    }
    if (el.scrollTop + el.clientHeight >= el.scrollHeight - 1) break;
    el.scrollTop += Math.max(50, el.clientHeight / 2);
  }
  return [...seen.entries()];
}"""


def server_events(server: ServerProcess, run_id: str) -> list[dict[str, Any]]:
    """The run's whole event log (a sync client: Playwright's loop owns this thread)."""
    out: list[dict[str, Any]] = []
    after = 0
    headers = {"Authorization": f"Bearer {server.token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
        while True:
            page = client.get(
                f"/api/runs/{run_id}/events", params={"after": after, "limit": 500}
            ).json()
            out += page["data"]
            if page["next_cursor"] is None:
                return out
            after = int(page["next_cursor"])


def wait_text(page: Page, text: str, timeout: float = 20_000) -> None:
    expect(page.get_by_test_id("transcript").get_by_text(text, exact=True)).to_be_visible(
        timeout=timeout
    )


def test_server_restart_mid_run(
    browser: Browser, server: ServerProcess, tmp_path: Path, screenshots: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.on("dialog", lambda d: d.accept())
    try:
        page.goto(f"{server.url}/login#token={server.token}")
        expect(page.get_by_role("heading", name="Runs")).to_be_visible()
        page.get_by_test_id("nav-new").click()
        page.get_by_label("Registered project").select_option("path")
        page.get_by_label("Repository path").fill(str(repo))
        page.get_by_label("Agent", exact=True).select_option("provider:script")
        page.get_by_label("Prompt").fill("Count slowly")
        page.get_by_text("More options").click()
        page.get_by_label("Agent options (JSON)").fill(json.dumps({"scenario": {"steps": STEPS}}))
        page.get_by_role("button", name="Start run").click()
        page.wait_for_url("**/runs/1")
        wait_text(page, f"line 3 of {LINES}")
        command = page.locator("details.tool", has_text="echo counting")
        expect(command.get_by_test_id("exit-code")).to_have_text("exit 0")
        command.locator("summary").click()  # input and output unfold
        expect(command.locator(".tool-body")).to_contain_text("counting")

        server.kill()  # kill -9 with the page open and the agent mid-scenario
        expect(page.get_by_test_id("connection")).to_have_text("reconnecting…")
        server.start()

        # The page reconnects by itself; the run was interrupted by the crash: resume it here.
        expect(page.get_by_test_id("connection")).to_have_text("live", timeout=20_000)
        status = page.locator(".run-head [data-testid=run-status]")
        expect(status).to_have_attribute("data-status", "interrupted", timeout=20_000)
        page.get_by_role("button", name="Resume").click()
        expect(status).to_have_attribute("data-status", "review", timeout=30_000)
        wait_text(page, f"line {LINES} of {LINES}")

        run_id = page.evaluate("() => fetch('/api/runs/1').then((r) => r.json())")["id"]
        events = server_events(server, run_id)
        transcript = page.get_by_test_id("transcript")
        expect(transcript).to_have_attribute("data-complete", "true")
        expect(transcript).to_have_attribute("data-last-event-id", str(events[-1]["id"]))
        # Every stored event was folded exactly once (the fold skips nothing it is given).
        assert transcript.get_attribute("data-event-count") == str(len(events))

        rows = transcript.evaluate(COLLECT)
        keys = [k for k, _ in rows]
        assert len(keys) == len(set(keys)) == int(transcript.get_attribute("data-item-count") or 0)
        said = [str(e["data"]["text"]) for e in events if e["type"] == "agent.message"]
        shown = [text.strip() for _, text in rows if text.strip().startswith("line ")]
        assert shown == said  # same messages, same order, same multiplicity as the server's log
        assert {f"line {i} of {LINES}" for i in range(1, LINES + 1)} <= set(shown)
        page.screenshot(path=str(screenshots / "phone-10-after-restart.png"))
    finally:
        context.close()
