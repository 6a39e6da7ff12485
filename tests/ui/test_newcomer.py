"""Issue 14's screens as a newcomer meets them, at 390x844 and 1440x900 in Debian's Chromium
against a real ``codeyard serve``: sign-in without 401 noise and with a first-admin path, the
new-run form (a real agent by default, options as fields, a script run without a scenario
refused), providers in Settings, the run's task chip and checkpoint wording, and ``/api/docs``
rendering with nothing fetched from outside. Screenshots go to ``bench/out/screenshots``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, Response, expect

from tests.conftest import make_repo
from tests.support.server import ServerProcess

VIEWPORTS = {"phone": (390, 844), "desktop": (1440, 900)}
STEPS = [
    {"say": "Planning."},
    {
        "tasks": [
            {"content": "Write a.txt", "status": "completed"},
            {"content": "Check", "status": "pending"},
        ]
    },
    {"write": {"path": "a.txt", "content": "a\n"}},
]


def api(server: ServerProcess, method: str, path: str, **kw: object) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {server.token}"}
    resp = httpx.request(method, server.url + path, headers=headers, timeout=30, **kw)  # type: ignore[arg-type]
    assert resp.status_code < 400, resp.text
    return dict(resp.json())


def setup_code(server: ServerProcess) -> str:
    found = re.findall(r"setup code ([A-Z0-9-]+)", server.log_tail(400))
    assert found, server.log_tail()
    return str(found[-1])


@pytest.mark.parametrize("viewport", sorted(VIEWPORTS))
def test_newcomer_screens(
    browser: Browser, server: ServerProcess, tmp_path: Path, screenshots: Path, viewport: str
) -> None:
    width, height = VIEWPORTS[viewport]
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    unauthorized: list[str] = []
    outside: list[str] = []

    def on_response(resp: Response) -> None:
        if resp.status == 401:
            unauthorized.append(resp.url)

    page.on("response", on_response)
    page.on(
        "request",
        lambda req: (
            outside.append(req.url)
            if urlsplit(req.url).hostname not in ("127.0.0.1", None)
            and not req.url.startswith(("data:", "blob:"))
            else None
        ),
    )

    def shot(name: str) -> None:
        page.screenshot(path=str(screenshots / f"{viewport}-newcomer-{name}.png"))

    try:
        # Opening / signed out goes straight to the sign-in page: no 401 on the way.
        page.goto(server.url + "/")
        page.wait_for_url("**/login?next=%2F")
        expect(page.get_by_role("button", name="Create account")).to_be_visible()
        assert unauthorized == []
        # The setup-code label is one line (it wrapped onto three).
        label = (
            page.locator("label", has=page.locator('input[name="setup_code"]'))
            .locator("span")
            .first
        )
        box = label.bounding_box()
        assert box is not None and box["height"] < 30, box
        shot("01-sign-in")

        # The login URL signs in; with no user yet, a banner says so and leads to the setup.
        page.goto(f"{server.url}/login#token={server.token}")
        expect(page.get_by_role("heading", name="Runs")).to_be_visible()
        banner = page.get_by_test_id("setup-banner")
        expect(banner).to_contain_text("No user account exists yet")
        shot("02-setup-banner")
        banner.get_by_role("link", name="Create admin").click()
        page.get_by_label("Setup code").fill(setup_code(server))
        page.get_by_label("Username").fill("ada")
        page.get_by_label("Password").fill("short")
        page.get_by_role("button", name="Create admin account").click()
        assert (
            page.locator('input[name="password"]:invalid').count() == 1
        )  # at least 8, said before sending
        page.get_by_label("Password").fill("a long enough password")
        shot("03-first-admin")
        page.get_by_role("button", name="Create admin account").click()
        expect(page.get_by_role("heading", name="Runs")).to_be_visible()
        expect(page.get_by_test_id("setup-banner")).to_have_count(0)
        users = httpx.get(
            f"{server.url}/api/users",
            headers={"Authorization": f"Bearer {server.token}"},
            timeout=30,
        )
        assert [u["username"] for u in users.json()["data"]] == ["ada"]

        # New run: a real agent by default, its options as fields; script needs a scenario.
        repo = make_repo(tmp_path / "repo")
        page.get_by_test_id("nav-new").click()
        agent = page.get_by_label("Agent", exact=True)
        # The first call probes every CLI's version: give it time.
        expect(agent).to_have_value("provider:claude-code", timeout=30_000)
        page.get_by_text("More options").click()
        options = page.get_by_test_id("agent-options")
        expect(options.get_by_label("Model")).to_be_visible()
        expect(options.get_by_label("Permission mode")).to_be_visible()
        expect(options.get_by_text("Env sets", exact=True)).to_be_visible()
        expect(options.get_by_label("Instructions")).to_be_visible()
        expect(options.get_by_label("Agent options (JSON)")).to_be_visible()
        shot("04-new-run-options")
        page.get_by_label("Registered project").select_option("path")
        page.get_by_label("Repository path").fill(str(repo))
        agent.select_option("provider:script")
        page.get_by_label("Prompt").fill("Nothing scripted")
        page.get_by_role("button", name="Start run").click()
        expect(page.get_by_text("The script agent needs a scenario")).to_be_visible()
        assert page.url.endswith("/runs/new")
        assert api(server, "GET", "/api/runs")["data"] == []  # nothing was created
        shot("05-script-refused")
        page.get_by_label("Scenario").fill(json.dumps(STEPS))
        page.get_by_label("Permission mode").select_option("auto")
        page.get_by_role("button", name="Start run").click()
        page.wait_for_url("**/runs/1")

        # The run: tasks are a chip that expands, not a tab.
        chip = page.get_by_test_id("tasks-toggle")
        expect(chip).to_have_text(re.compile(r"1/2 tasks"), timeout=20_000)
        assert chip.get_attribute("aria-expanded") == "false"
        chip.click()
        assert chip.get_attribute("aria-expanded") == "true"
        shot("06-run-tasks")
        if viewport == "phone":  # the phone's header: tabs are in the run menu
            page.get_by_test_id("run-menu").click()
            page.get_by_test_id("menu-diff").click()
        else:
            page.get_by_test_id("tab-review").click()
        checkpoint = page.get_by_test_id("checkpoint").first
        expect(checkpoint).to_contain_text("End of turn 1")
        expect(checkpoint).to_contain_text("1 file ·")
        assert "turn · turn" not in checkpoint.inner_text()
        shot("07-checkpoints")

        # Settings: acp is not "ready" without a command.
        page.goto(server.url + "/settings/providers")
        acp = page.get_by_test_id("provider").filter(has_text="acp").first
        expect(acp).to_contain_text("needs a command per run")
        assert "`" not in acp.inner_text()  # inline code is rendered, not shown as backticks
        shot("08-providers")

        # The API docs render offline, from this server only.
        page.goto(server.url + "/api/docs")
        expect(page.locator(".swagger-ui .info .title")).to_contain_text("Codeyard", timeout=20_000)
        expect(page.locator(".opblock").first).to_be_visible()
        shot("09-api-docs")
        assert outside == [], outside
        assert unauthorized == [], unauthorized
    finally:
        context.close()


def test_one_field_problems_are_said_once(browser: Browser, server: ServerProcess) -> None:
    """A short password on the sign-up form (client checks bypassed) shows one message."""
    page: Page = browser.new_page(viewport={"width": 390, "height": 844})
    try:
        page.goto(server.url + "/login")
        # The setup form sets minlength once the status has loaded: remove it after that.
        expect(page.get_by_text("Create the first account.")).to_be_visible()
        page.locator('input[name="password"]').evaluate("el => el.removeAttribute('minlength')")
        page.get_by_label("Setup code").fill(setup_code(server))
        page.get_by_label("Username").fill("bob")
        page.get_by_label("Password").fill("short")
        page.get_by_role("button", name="Create account").click()
        alert = page.get_by_role("alert")
        expect(alert).to_contain_text("at least 8 characters")
        assert alert.inner_text().count("at least 8 characters") == 1, alert.inner_text()
    finally:
        page.close()


@pytest.mark.parametrize("viewport", sorted(VIEWPORTS))
def test_approval_cards_show_the_change_and_what_always_covers(
    browser: Browser, server: ServerProcess, tmp_path: Path, screenshots: Path, viewport: str
) -> None:
    width, height = VIEWPORTS[viewport]
    repo = make_repo(tmp_path / "repo")
    steps = [
        {"write": {"path": "notes/a.txt", "content": "first line\nsecond line\n"}},
        {"write": {"path": "notes/a.txt", "content": "rewritten\n"}},
        {"bash": "echo done > done.txt"},
    ]
    run = api(
        server,
        "POST",
        "/api/runs",
        json={
            "prompt": "Write notes",
            "repo_path": str(repo),
            "provider": "script",
            "agent_options": {"scenario": {"steps": steps}, "permission_mode": "default"},
        },
    )
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    try:
        page.goto(f"{server.url}/login#token={server.token}")
        expect(page.get_by_role("heading", name="Runs")).to_be_visible()
        page.goto(f"{server.url}/runs/{run['number']}")
        card = page.locator('[data-testid="approval-card"][data-status="pending"]').first
        expect(card).to_be_visible(timeout=20_000)
        # The change itself, with the path relative to the worktree, and the rule in words.
        expect(card.get_by_test_id("approval-diff")).to_contain_text("+first line")
        expect(card.get_by_test_id("approval-diff")).to_contain_text("+second line")
        expect(card).to_contain_text("Write notes/a.txt")
        assert "/worktrees/" not in card.inner_text()
        expect(card.get_by_test_id("approval-rule")).to_have_text(
            "Why: asks before writes and commands — default mode"
        )
        remember = card.get_by_label("Remember")
        options = remember.locator("option").all_inner_texts()
        assert "Always in this run: Write on notes/a.txt" in options, options
        page.screenshot(path=str(screenshots / f"{viewport}-newcomer-10-approval-write.png"))
        remember.select_option("run")
        card.get_by_role("button", name="Approve").click()
        # Answered, the card folds into its tool card as a badge.
        transcript = page.get_by_test_id("transcript")
        expect(transcript.get_by_test_id("tool-answer").first).to_have_text(
            re.compile("^approved"), timeout=20_000
        )
        # "Always" did exactly that: the second write to the same file did not ask; the
        # command is a new question, shown as a command.
        bash = page.locator('[data-testid="approval-card"][data-status="pending"]').first
        expect(bash.get_by_test_id("approval-command")).to_have_text(
            "$ echo done > done.txt", timeout=20_000
        )
        options = bash.get_by_label("Remember").locator("option").all_inner_texts()
        assert "Always in this run: exactly `echo done > done.txt`" in options, options
        page.screenshot(path=str(screenshots / f"{viewport}-newcomer-11-approval-command.png"))
        answered = api(server, "GET", f"/api/approvals?run_id={run['id']}")["data"]
        assert [a["tool"] for a in answered].count("Write") == 1  # type: ignore[union-attr]
    finally:
        context.close()


def test_a_long_step_shows_a_working_indicator_and_cli_durations(
    browser: Browser, server: ServerProcess, tmp_path: Path, screenshots: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    steps = [{"say": "Starting a long step."}, {"sleep": 15}, {"say": "Finished."}]
    run = api(
        server,
        "POST",
        "/api/runs",
        json={
            "prompt": "Take your time",
            "repo_path": str(repo),
            "provider": "script",
            "agent_options": {"scenario": {"steps": steps}},
        },
    )
    page = browser.new_page(viewport={"width": 390, "height": 844})
    try:
        page.goto(f"{server.url}/login#token={server.token}")
        expect(page.get_by_role("heading", name="Runs")).to_be_visible()
        page.goto(f"{server.url}/runs/{run['number']}")
        working = page.get_by_test_id("working")
        expect(working).to_contain_text("since the last step", timeout=15_000)
        page.screenshot(path=str(screenshots / "phone-newcomer-12-working.png"))
        expect(page.get_by_test_id("run-status")).to_have_text("review", timeout=30_000)
        expect(working).to_have_count(0)
        ended = page.locator(".turn-end").first
        expect(ended).to_have_text(re.compile(r"· [0-9]+\.[0-9]s$"))  # 15.1s, as the CLI says
    finally:
        page.close()


@pytest.mark.parametrize("viewport", sorted(VIEWPORTS))
def test_agent_profiles_take_the_same_fields(
    browser: Browser, server: ServerProcess, screenshots: Path, viewport: str
) -> None:
    width, height = VIEWPORTS[viewport]
    env_set = api(server, "POST", "/api/env-sets", json={"name": "keys", "variables": {"K": "v"}})
    page = browser.new_page(viewport={"width": width, "height": height})
    try:
        page.goto(f"{server.url}/login#token={server.token}")
        expect(page.get_by_role("heading", name="Runs")).to_be_visible()
        page.goto(f"{server.url}/settings/agents")
        form = page.get_by_role("form", name="New agent profile")
        form.get_by_label("Name").fill("Reviewer")
        # By role: a label's text takes in the options of the select it wraps once they load.
        provider = form.get_by_role("combobox", name="Provider", exact=True)
        provider.select_option("codex", timeout=30_000)
        form.get_by_label("Model").fill("gpt-5-codex")
        form.get_by_label("Permission mode").select_option("plan")
        form.get_by_label("keys").check()
        form.get_by_label("Instructions").fill("Review only.")
        page.screenshot(
            path=str(screenshots / f"{viewport}-newcomer-13-agent-profile.png"), full_page=True
        )
        form.get_by_role("button", name="Create profile").click()
        expect(page.get_by_text("Reviewer")).to_be_visible()
        (agent,) = api(server, "GET", "/api/agents")["data"]  # type: ignore[misc]
        assert agent["provider"] == "codex" and agent["model"] == "gpt-5-codex"
        assert agent["permission_mode"] == "plan" and agent["env_set_ids"] == [env_set["id"]]
    finally:
        page.close()


@pytest.mark.parametrize("viewport", sorted(VIEWPORTS))
def test_admins_manage_users(
    browser: Browser, server: ServerProcess, screenshots: Path, viewport: str
) -> None:
    width, height = VIEWPORTS[viewport]
    page = browser.new_page(viewport={"width": width, "height": height})
    page.on(
        "dialog", lambda d: d.accept("another long password") if d.type == "prompt" else d.accept()
    )
    try:
        page.goto(f"{server.url}/login#token={server.token}")
        expect(page.get_by_role("heading", name="Runs")).to_be_visible()
        page.goto(f"{server.url}/settings/users")
        form = page.get_by_role("form", name="Add a user")
        form.get_by_label("Username").fill("grace")
        form.get_by_label("First password").fill("a first password")
        form.get_by_label("Role").select_option("viewer")
        form.get_by_role("button", name="Add user").click()
        card = page.get_by_test_id("user").filter(has_text="grace")
        expect(card).to_be_visible()
        expect(page.get_by_test_id("setup-banner")).to_have_count(0)  # a user exists now
        card.get_by_label("Role of grace").select_option("member")
        expect(page.get_by_test_id("users").get_by_role("status")).to_contain_text(
            "grace is now member"
        )
        card.get_by_role("button", name="Reset password").click()
        expect(page.get_by_test_id("users").get_by_role("status")).to_contain_text(
            "New password set for grace"
        )
        page.screenshot(path=str(screenshots / f"{viewport}-newcomer-14-users.png"), full_page=True)
        (user,) = api(server, "GET", "/api/users")["data"]  # type: ignore[misc]
        assert user["username"] == "grace" and user["role"] == "member"
        signed_in = httpx.post(
            f"{server.url}/api/auth/login",
            json={"username": "grace", "password": "another long password"},
            timeout=30,
        )
        assert signed_in.status_code == 200, signed_in.text  # the reset password works
    finally:
        page.close()
