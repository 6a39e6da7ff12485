"""Plans on the board page in Debian's Chromium against a real ``codeyard serve`` and
``codeyard fake-llm`` over loopback: a goal typed on the board becomes a proposed plan, and
accepting it puts its tickets, with their blockers, in the backlog column."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from codeyard.testing.fake_llm import FakeLLM
from codeyard.testing.fake_llm.script import parse_replies
from tests.conftest import make_repo
from tests.support.server import ServerProcess

pytestmark = pytest.mark.slow  # a real server process

ANSWER = {
    "title": "Release notes",
    "summary": "Collect changes, then write the notes.",
    "tickets": [
        {"ref": "t1", "title": "Collect merged changes", "kind": "task"},
        {"ref": "t2", "title": "Write the notes", "kind": "chore", "blocked_by": ["t1"]},
    ],
}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path / "data")
    try:
        srv.start(timeout=120)
        yield srv
    finally:
        srv.stop()


def test_a_goal_on_the_board_becomes_tickets(
    browser: Browser, server: ServerProcess, tmp_path: Path, screenshots: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    client = httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}, timeout=30
    )
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    with FakeLLM() as fake:
        try:
            body = {"name": "Shop", "slug": "shop", "repos": [{"path": str(repo)}]}
            assert client.post("/api/projects", json=body).status_code == 201
            setting = {
                "config": {
                    "backend": "openai",
                    "model": "gpt-4.1-mini",
                    "base_url": f"{fake.url}/v1",
                }
            }
            assert client.put("/api/settings/utility-model", json=setting).status_code == 200
            fake.script(parse_replies([{"text": json.dumps(ANSWER)}])[0])

            page = context.new_page()
            page.goto(f"{server.url}/login#token={server.token}")
            page.wait_for_url(f"{server.url}/")
            page.goto(f"{server.url}/projects/shop/board")
            page.get_by_test_id("plans").locator("summary").click()
            page.get_by_test_id("plan-goal").fill("Ship release notes")
            page.get_by_test_id("plan-propose").click()
            expect(page.get_by_test_id("plans")).to_contain_text("Write the notes")
            expect(page.get_by_test_id("plans")).to_contain_text("⛓ t1")
            page.screenshot(path=str(screenshots / "desktop-plan.png"))
            page.get_by_test_id("plan-accept").click()
            backlog = page.get_by_test_id("column-backlog")
            expect(backlog.get_by_test_id("ticket-2")).to_contain_text("Write the notes")
            expect(backlog.get_by_test_id("ticket-2")).to_contain_text("#1")
            expect(page.get_by_test_id("plan-accept")).to_have_count(0)
            made = client.get("/api/projects/shop/tickets/2").json()
            assert made["blocked_by"] == [1] and made["status"] == "backlog"
        finally:
            context.close()
            client.close()
