"""The ticket board and ticket page (issue 19) at 390x844 (touch) and 1440x900 in Debian's
Chromium against a real ``codeyard serve``: columns by status, a card moved by its menu (tap on
the phone) and by drag and drop (desktop) changes the ticket's status on the server, and a
comment written on the ticket page is stored. Screenshots go to ``bench/out/screenshots``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.conftest import make_repo
from tests.support.server import ServerProcess

VIEWPORTS = {"phone": (390, 844), "desktop": (1440, 900)}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path / "data")
    try:
        srv.start(timeout=120)
        yield srv
    finally:
        srv.stop()


def seed(server: ServerProcess, repo: Path) -> httpx.Client:
    client = httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}, timeout=30
    )
    body = {"name": "Shop", "slug": "shop", "repos": [{"path": str(repo)}]}
    assert client.post("/api/projects", json=body).status_code == 201
    for title, status in [
        ("Cart total is wrong", "inbox"),
        ("Add coupons", "backlog"),
        ("Checkout copy", "in_progress"),
    ]:
        made = client.post("/api/projects/shop/tickets", json={"title": title, "status": status})
        assert made.status_code == 201, made.text
    return client


def status_of(client: httpx.Client, number: int) -> str:
    status: str = client.get(f"/api/projects/shop/tickets/{number}").json()["status"]
    return status


@pytest.mark.parametrize("viewport", sorted(VIEWPORTS))
def test_board_moves_cards_and_ticket_page_comments(
    browser: Browser, server: ServerProcess, tmp_path: Path, screenshots: Path, viewport: str
) -> None:
    width, height = VIEWPORTS[viewport]
    phone = viewport == "phone"
    client = seed(server, make_repo(tmp_path / "repo"))
    context = browser.new_context(viewport={"width": width, "height": height}, has_touch=phone)
    page = context.new_page()
    try:
        page.goto(f"{server.url}/login#token={server.token}")
        page.wait_for_url(f"{server.url}/")
        page.goto(f"{server.url}/board")
        page.get_by_test_id("board-project").click()
        expect(page.get_by_test_id("board")).to_be_visible()
        expect(page.get_by_test_id("column-inbox").get_by_test_id("ticket-1")).to_be_visible()
        page.screenshot(path=str(screenshots / f"{viewport}-board.png"))

        # The card's menu works by touch and keyboard: #1 goes to "In review".
        page.get_by_test_id("move-1").select_option("in_review")
        expect(page.get_by_test_id("column-in_review").get_by_test_id("ticket-1")).to_be_visible()
        assert status_of(client, 1) == "in_review"

        if not phone:  # drag and drop with the mouse: #2 from Backlog to Done
            page.get_by_test_id("ticket-2").drag_to(page.get_by_test_id("column-done"))
            expect(page.get_by_test_id("column-done").get_by_test_id("ticket-2")).to_be_visible()
            assert status_of(client, 2) == "done"

        # A new ticket from the board lands in the inbox.
        page.get_by_test_id("new-ticket-title").fill("Write release notes")
        page.get_by_test_id("new-ticket-add").click()
        expect(page.get_by_test_id("column-inbox").get_by_test_id("ticket-4")).to_be_visible()

        # On the phone the columns scroll sideways instead of squeezing: each is most of the
        # screen wide, and the page itself does not scroll horizontally.
        col = page.get_by_test_id("column-inbox").bounding_box()
        assert col is not None
        if phone:
            assert col["width"] > width * 0.6
        else:
            assert col["width"] < width / 4
        assert page.evaluate("document.documentElement.scrollWidth") <= width

        link = page.get_by_test_id("ticket-3").get_by_role("link")
        if phone:
            link.tap()
        else:
            link.click()
        expect(page.get_by_test_id("ticket-page")).to_contain_text("Checkout copy")
        page.get_by_test_id("comment-body").fill("Use **shorter** words, @ana.")
        page.get_by_test_id("comment-add").click()
        expect(page.get_by_test_id("ticket-comment")).to_contain_text("shorter")
        page.screenshot(path=str(screenshots / f"{viewport}-ticket.png"), full_page=True)
        stored = client.get("/api/projects/shop/tickets/3/comments").json()["data"]
        assert [c["mentions"] for c in stored] == [["ana"]]
    finally:
        context.close()
        client.close()
