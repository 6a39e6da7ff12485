"""The run page's header (issue 14) at 390x844 and 1440x900 in Debian's Chromium against a real
``codeyard serve``: on the phone it is the title, the status and one action menu (the tabs,
merge / pull request / discard, share, terminal, controls, the status timeline), so the
transcript gets the screen; on the desktop the tabs and controls stay. Tokens and cost rise
during a turn as usage events stream in, and merging into a branch checked out in the person's
own repository asks first. Screenshots go to ``bench/out/screenshots``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import make_repo
from tests.support.server import ServerProcess

VIEWPORTS = {"phone": (390, 844), "desktop": (1440, 900)}
#: Two usage increments with a pause between them: the header must show the first one while
#: the turn is still running (the run is not reloaded in between).
STEPS = [
    {"say": "Starting."},
    {"usage": {"input_tokens": 1200, "output_tokens": 300, "cost_usd": 0.25}},
    {"sleep": 4},
    {"usage": {"input_tokens": 800, "output_tokens": 200, "cost_usd": 0.5}},
    {"write": {"path": "feature.txt", "content": "feature\n"}},
    {"say": "Done."},
]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server with a patient start-up (the suite's machine is often saturated)."""
    srv = ServerProcess(tmp_path / "data")
    try:
        srv.start(timeout=120)
        yield srv
    finally:
        srv.stop()


def start_run(server: ServerProcess, repo: Path) -> int:
    headers = {"Authorization": f"Bearer {server.token}"}
    body = {
        "prompt": "Write the feature",
        "repo_path": str(repo),
        "provider": "script",
        "agent_options": {"scenario": {"steps": STEPS}, "permission_mode": "auto"},
    }
    resp = httpx.post(f"{server.url}/api/runs", json=body, headers=headers, timeout=30)
    assert resp.status_code == 201, resp.text
    return int(resp.json()["number"])


def main_head(repo: Path) -> str:
    out = subprocess.run(["git", "-C", str(repo), "rev-parse", "main"], capture_output=True)
    return out.stdout.decode().strip()


def open_menu(page: Page) -> None:
    page.get_by_test_id("run-menu").click()
    expect(page.get_by_role("menu", name="Run actions")).to_be_visible()


@pytest.mark.parametrize("viewport", sorted(VIEWPORTS))
def test_run_header_menu_live_usage_timeline_and_merge_confirmation(
    browser: Browser, server: ServerProcess, tmp_path: Path, screenshots: Path, viewport: str
) -> None:
    width, height = VIEWPORTS[viewport]
    phone = viewport == "phone"
    repo = make_repo(tmp_path / "repo")
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()

    def shot(name: str) -> None:
        page.screenshot(path=str(screenshots / f"{viewport}-run-header-{name}.png"))

    try:
        page.goto(f"{server.url}/login#token={server.token}")
        page.wait_for_url(f"{server.url}/")
        number = start_run(server, repo)
        page.goto(f"{server.url}/runs/{number}")
        cost = page.get_by_test_id("run-cost")
        # Mid-turn: the first usage event is on screen while the agent still works.
        expect(cost).to_contain_text("$0.25", timeout=20_000)
        expect(cost).to_contain_text("1.2k in")
        expect(page.locator(".run-head [data-testid=run-status]")).to_have_attribute(
            "data-status", "running"
        )
        shot("1-running")
        head = page.locator(".run-head").bounding_box()
        assert head is not None
        tabs = page.get_by_test_id("tab-review")
        if phone:
            # Title, status, menu and one line of figures: the transcript gets the screen.
            assert head["height"] < 0.12 * height, head
            expect(tabs).to_be_hidden()
            # The composer stays on screen above the tab bar (no banner pushes it down).
            expect(page.get_by_label("Message")).to_be_in_viewport()
        else:
            expect(tabs).to_be_visible()
        expect(cost).to_contain_text("$0.75", timeout=20_000)
        expect(cost).to_contain_text("2.0k in")
        expect(page.locator(".run-head [data-testid=run-status]")).to_have_attribute(
            "data-status", "review", timeout=20_000
        )

        # The status timeline, from the event log, with times.
        open_menu(page)
        if phone:
            for item in ("menu-diff", "menu-merge", "menu-pr", "menu-discard"):
                expect(page.get_by_test_id(item)).to_be_visible()
        else:  # the wide header keeps its tabs; the menu holds only what has no place there
            expect(page.get_by_test_id("menu-merge")).to_be_hidden()
        shot("2-menu")
        page.get_by_test_id("menu-timeline").click()
        timeline = page.get_by_test_id("status-timeline")
        expect(timeline).to_be_visible()
        steps = [s.strip() for s in timeline.locator(".st-name").all_inner_texts()]
        assert steps[0] == "created" and steps[-1] == "review", steps
        assert {"preparing", "running"} <= set(steps), steps
        assert timeline.locator("time").count() == len(steps)
        shot("3-timeline")
        page.get_by_role("button", name="Close the timeline").click()

        # Merge: main is checked out in the person's repository, so they are asked first.
        if phone:
            open_menu(page)
            page.get_by_test_id("menu-merge").click()
            page.wait_for_url(f"**/runs/{number}/review?action=merge")
        else:
            tabs.click()
        form = page.get_by_role("form", name="Resolve")
        expect(form.get_by_role("radio", name="Merge", exact=True)).to_be_checked()
        before = main_head(repo)
        form.get_by_role("button", name="Merge", exact=True).click()
        ask = page.get_by_test_id("confirm-land")
        expect(ask).to_contain_text("'main' is checked out in")
        expect(ask).to_contain_text("Land anyway?")
        ask.scroll_into_view_if_needed()
        shot("4-confirm-merge")
        ask.get_by_role("button", name="Cancel").click()
        expect(ask).to_be_hidden()
        assert main_head(repo) == before  # asked, not merged
        form.get_by_role("button", name="Merge", exact=True).click()
        page.get_by_test_id("confirm-land").get_by_role("button", name="Yes, merge").click()
        expect(page.get_by_test_id("resolved")).to_contain_text("merged", timeout=20_000)
        assert main_head(repo) != before
        assert (repo / "feature.txt").read_text() == "feature\n"
        shot("5-merged")
    finally:
        context.close()
