"""A board bigger than one API page (issue 19): every ticket is fetched (the list API returns
at most 500 a page) so the column count is right and the oldest ticket is on the board, and a
column draws its first ``CARDS_PER_COLUMN`` (50) cards with a "Show more" button (what keeps
a board of 2,000 tickets interactive in under 1 s: bench/board.py). Real ``codeyard serve``,
Debian's Chromium.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.conftest import make_repo
from tests.support.server import ServerProcess

TICKETS = 530  # two pages of the list API


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path / "data")
    try:
        srv.start(timeout=120)
        yield srv
    finally:
        srv.stop()


def test_board_loads_every_page_and_draws_cards_in_steps(
    browser: Browser, server: ServerProcess, tmp_path: Path
) -> None:
    headers = {"Authorization": f"Bearer {server.token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
        repo = make_repo(tmp_path / "repo")
        body = {"name": "Big", "slug": "big", "repos": [{"path": str(repo)}]}
        assert client.post("/api/projects", json=body).status_code == 201
        for i in range(TICKETS):
            status = "backlog" if i == 0 else "done"  # #1 (oldest: on the second page)
            made = client.post(
                "/api/projects/big/tickets", json={"title": f"T{i}", "status": status}
            )
            assert made.status_code == 201, made.text
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    try:
        page.goto(f"{server.url}/login#token={server.token}")
        page.wait_for_url(f"{server.url}/")
        page.goto(f"{server.url}/projects/big/board")
        done = page.get_by_test_id("column-done")
        expect(done.locator("h2")).to_have_text(f"Done {TICKETS - 1}")
        expect(page.get_by_test_id("column-backlog").get_by_test_id("ticket-1")).to_be_visible()
        expect(done.locator("article")).to_have_count(50)
        expect(done.get_by_test_id("ticket-2")).to_be_visible()  # oldest first in a column
        more = page.get_by_test_id("more-done")
        expect(more).to_have_text(f"Show 50 more of {TICKETS - 51}")
        more.click()
        expect(done.locator("article")).to_have_count(100)
    finally:
        context.close()
