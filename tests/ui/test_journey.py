"""The whole journey in a real browser, on a phone and on a desktop: sign in by the login URL,
create a run, watch it stream, approve one tool call and reject another, answer the agent,
review the diff, restore a checkpoint, merge, and find the change on the target branch."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.conftest import make_repo
from tests.support.server import ServerProcess

pytestmark = pytest.mark.slow

VIEWPORTS = {"phone": (390, 844), "desktop": (1440, 900)}

SCENARIO: dict[str, Any] = {
    "permission_mode": "default",
    "scenario": {
        "steps": [
            {
                "say": "Starting on **the feature**.\n\n- write it\n- check it\n\n"
                '<img src=x onerror="document.title=1"> [link](javascript:void(0))'
            },
            {"tasks": [{"content": "Write feature", "status": "in_progress"}]},
            {"think": "The file goes at the top level."},
            {"write": {"path": "feature.txt", "content": "feature v1\n"}},
            {"bash": "rm -rf /tmp/codeyard-ui-test-not-allowed"},
            {"ask": "Which greeting should I use?"},
            {"usage": {"input_tokens": 1200, "output_tokens": 340, "cost_usd": 0.0123}},
            {"tasks": [{"content": "Write feature", "status": "completed"}]},
            {"say": "Done: feature written."},
        ]
    },
    "on_message": [
        {"write": {"path": "extra.txt", "content": "not wanted\n"}},
        {"say": "Added extra.txt."},
    ],
}


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True)
    return out.stdout.strip()


def sign_in(page: Page, server: ServerProcess) -> None:
    page.goto(f"{server.url}/login#token={server.token}")
    expect(page.get_by_role("heading", name="Runs")).to_be_visible()
    assert "token" not in page.url  # the token never stays in the address bar
    cookies = {c["name"] for c in page.context.cookies()}
    assert {"codeyard_session", "codeyard_csrf"} <= cookies


def pending_card(page: Page, text: str) -> Locator:
    card = page.locator('[data-testid="approval-card"][data-status="pending"]', has_text=text)
    expect(card).to_be_visible(timeout=15_000)
    return card


def status(page: Page, value: str, timeout: float = 20_000) -> None:
    expect(page.locator(".run-head [data-testid=run-status]")).to_have_attribute(
        "data-status", value, timeout=timeout
    )


def send(page: Page, text: str) -> None:
    page.get_by_label("Message").fill(text)
    page.get_by_role("button", name="Send").click()
    expect(page.get_by_label("Message")).to_have_value("")


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_journey(
    browser: Browser, server: ServerProcess, tmp_path: Path, screenshots: Path, viewport: str
) -> None:
    repo = make_repo(tmp_path / "repo", {"README.md": "# demo\n"})
    width, height = VIEWPORTS[viewport]
    # The phone follows a light system theme, the desktop a dark one.
    scheme = "dark" if viewport == "desktop" else "light"
    context = browser.new_context(viewport={"width": width, "height": height}, color_scheme=scheme)
    page = context.new_page()
    page.on("dialog", lambda d: d.accept())
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on(
        "console",
        lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None,
    )

    def shot(name: str) -> None:
        page.screenshot(path=str(screenshots / f"{viewport}-{name}.png"))

    try:
        sign_in(page, server)
        shot("01-runs-empty")

        # Create a run from the form.
        page.get_by_test_id("nav-new").click()
        page.get_by_label("Registered project").select_option("path")
        page.get_by_label("Repository path").fill(str(repo))
        page.get_by_label("Agent", exact=True).select_option("provider:script")
        page.get_by_label("Prompt").fill("Add the feature file")
        page.get_by_text("More options").click()
        page.get_by_label("Title").fill("Add the feature")
        page.get_by_label("Agent options (JSON)").fill(json.dumps(SCENARIO))
        shot("02-new-run")
        page.get_by_role("button", name="Start run").click()
        page.wait_for_url("**/runs/1")

        # It streams: Markdown, thinking (collapsed), the task list, then the first ask.
        transcript = page.get_by_test_id("transcript")
        expect(transcript.locator("strong", has_text="the feature")).to_be_visible()
        expect(transcript.locator("details.thinking")).to_be_visible()
        # Agent text is shown, never run: no markup from it, no script links.
        expect(transcript.get_by_text("<img src=x", exact=False)).to_be_visible()
        assert transcript.locator("img").count() == 0
        assert transcript.locator('a[href^="javascript"]').count() == 0
        write = pending_card(page, "Write")
        status(page, "waiting")
        expect(page.get_by_test_id("pending-count")).to_have_text("1")  # the badge, one tap away
        shot("03-approval")
        write.get_by_role("button", name="Approve").click()

        # The second ask (a bash command) is rejected.
        bash = pending_card(page, "rm -rf")
        bash.get_by_role("button", name="Reject").click()
        # Answered, the card folds into its tool card as a badge (issue 14).
        expect(transcript.get_by_test_id("tool-answer").filter(has_text="rejected")).to_be_visible()
        expect(page.locator('[data-testid="approval-card"][data-status="rejected"]')).to_have_count(
            0
        )

        # The agent asks a question: answer it from the message box.
        expect(transcript.get_by_text("Which greeting should I use?")).to_be_visible()
        send(page, "Use hello")
        expect(transcript.get_by_text("Use hello", exact=True)).to_be_visible()
        status(page, "review")
        expect(transcript.get_by_text("Done: feature written.")).to_be_visible()
        expect(page.get_by_test_id("run-cost")).to_contain_text("$0.01")
        shot("04-review-transcript")

        # A message in review starts another turn, which writes a file we will not keep.
        send(page, "Also add extra.txt")
        pending_card(page, "extra.txt").get_by_role("button", name="Approve").click()
        expect(transcript.get_by_text("Added extra.txt.")).to_be_visible(timeout=15_000)
        status(page, "review")

        # The diff shows both files.
        if viewport == "phone":  # the phone's header: tabs are in the run menu
            page.get_by_test_id("run-menu").click()
            page.get_by_test_id("menu-diff").click()
        else:
            page.get_by_test_id("tab-review").click()
        files = page.get_by_test_id("file-list")
        expect(files).to_contain_text("feature.txt")
        expect(files).to_contain_text("extra.txt")
        expect(page.locator('[data-testid=diff][data-path="feature.txt"]')).to_contain_text(
            "feature v1"
        )
        shot("05-diff")

        # Restore the checkpoint of the first turn: extra.txt is gone from the diff.
        checkpoint = page.locator('[data-testid=checkpoint][data-number="1"]')
        checkpoint.get_by_role("button", name="Restore").click()
        expect(page.get_by_text("Restored.")).to_be_visible()
        expect(files).not_to_contain_text("extra.txt")
        expect(files).to_contain_text("feature.txt")
        shot("06-restored")

        # Merge: main is checked out in the repository, so the page asks first.
        page.get_by_role("button", name="Merge", exact=True).click()
        ask = page.get_by_test_id("confirm-land")
        expect(ask).to_contain_text("'main' is checked out in")
        ask.get_by_role("button", name="Yes, merge").click()
        expect(page.get_by_test_id("resolved")).to_contain_text("merged", timeout=20_000)
        status(page, "completed")
        shot("07-merged")

        # On disk: the target branch has the change, and not the restored-away file.
        assert git(repo, "show", "main:feature.txt") == "feature v1"
        assert "extra.txt" not in git(repo, "ls-tree", "--name-only", "main").split()

        page.get_by_test_id("nav-runs").click()
        expect(page.get_by_test_id("run-row-1")).to_contain_text("completed")
        shot("08-runs")
        assert not errors, errors
    finally:
        context.close()


def test_settings_and_inbox_render(
    browser: Browser, server: ServerProcess, screenshots: Path
) -> None:
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}, timeout=30
    ) as c:
        resp = c.post(
            "/api/policies",
            json={"name": "guard", "priority": 5, "rules": [{"tool": "Bash", "action": "ask"}]},
        )
        assert resp.status_code == 201, resp.text
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        sign_in(page, server)
        page.get_by_test_id("nav-approvals").click()
        expect(page.get_by_text("Nothing is waiting for you.")).to_be_visible()
        page.keyboard.press("?")  # desktop shortcuts
        expect(page.get_by_role("dialog", name="Keyboard shortcuts")).to_be_visible()
        page.keyboard.press("Escape")
        page.keyboard.press("g")
        page.keyboard.press("r")
        expect(page.get_by_role("heading", name="Runs")).to_be_visible()
        page.keyboard.press("/")
        expect(page.get_by_label("Search runs")).to_be_focused()
        page.keyboard.press("Escape")
        page.get_by_test_id("nav-settings").click()
        # /api/providers probes every agent CLI's version: slow on a loaded machine.
        expect(page.get_by_test_id("provider").filter(has_text="script")).to_be_visible(
            timeout=60_000
        )
        page.get_by_role("link", name="Policies").click()
        expect(page.get_by_test_id("effective-order")).to_contain_text("guard")
        page.screenshot(path=str(screenshots / "phone-09-settings-policies.png"))
    finally:
        context.close()


def test_inbox_approval_and_merge_conflicts(
    browser: Browser, server: ServerProcess, tmp_path: Path, screenshots: Path
) -> None:
    """Approve from the inbox (the badge is one tap away), then a merge that conflicts shows the
    conflicting paths and changes nothing."""
    repo = make_repo(tmp_path / "repo", {"README.md": "# demo\n"})
    options = {
        "permission_mode": "default",
        "scenario": {"steps": [{"write": {"path": "README.md", "content": "# agent\n"}}]},
    }
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.on("dialog", lambda d: d.accept())
    try:
        sign_in(page, server)
        page.get_by_test_id("nav-new").click()
        page.get_by_label("Registered project").select_option("path")
        page.get_by_label("Repository path").fill(str(repo))
        page.get_by_label("Agent", exact=True).select_option("provider:script")
        page.get_by_label("Prompt").fill("Rewrite the README")
        page.get_by_text("More options").click()
        page.get_by_label("Agent options (JSON)").fill(json.dumps(options))
        page.get_by_role("button", name="Start run").click()
        page.wait_for_url("**/runs/1")

        page.get_by_test_id("nav-approvals").click()
        inbox = page.get_by_test_id("approvals-inbox")
        expect(inbox).to_contain_text("README.md", timeout=15_000)
        expect(page.get_by_test_id("pending-count")).to_have_text("1")
        page.screenshot(path=str(screenshots / "phone-11-inbox.png"))
        inbox.get_by_role("button", name="Approve").click()
        expect(page.get_by_text("Nothing is waiting for you.")).to_be_visible()
        expect(page.get_by_test_id("pending-count")).to_have_count(0)

        page.goto(f"{server.url}/runs/1/review")
        status(page, "review")
        (repo / "README.md").write_text("# user\n")  # the target branch moves meanwhile
        git(repo, "commit", "-qam", "user edit")
        before = git(repo, "rev-parse", "main")
        page.get_by_role("button", name="Merge", exact=True).click()
        conflicts = page.get_by_test_id("conflicts")
        expect(conflicts).to_contain_text("README.md")
        page.screenshot(path=str(screenshots / "phone-12-conflicts.png"))
        assert git(repo, "rev-parse", "main") == before
        status(page, "review")
    finally:
        context.close()
