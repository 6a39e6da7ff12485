"""Touch drag on the ticket board (issue 19): at phone size, in Debian's Chromium with touch
emulation against a real ``codeyard serve``, a finger drags a card by its handle to another
column and the ticket's status changes on the server. The touches are real touch input
(``Input.dispatchTouchEvent`` through the DevTools protocol), not synthetic DOM events, so the
browser turns them into pointer events exactly as it does for a finger."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, CDPSession, Page, expect

from tests.conftest import make_repo
from tests.support.server import ServerProcess


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path / "data")
    try:
        srv.start(timeout=120)
        yield srv
    finally:
        srv.stop()


def center(page: Page, test_id: str) -> tuple[float, float]:
    box = page.get_by_test_id(test_id).bounding_box()
    assert box is not None, test_id
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def touch_drag(cdp: CDPSession, start: tuple[float, float], end: tuple[float, float]) -> None:
    def send(kind: str, x: float, y: float) -> None:
        points = [] if kind == "touchEnd" else [{"x": x, "y": y, "id": 1}]
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

    send("touchStart", *start)
    steps = 8
    for i in range(1, steps + 1):
        send(
            "touchMove",
            start[0] + (end[0] - start[0]) * i / steps,
            start[1] + (end[1] - start[1]) * i / steps,
        )
    send("touchEnd", *end)


def test_a_finger_drags_a_card_to_another_column(
    browser: Browser, server: ServerProcess, tmp_path: Path, screenshots: Path
) -> None:
    width, height = 390, 844
    make_repo(tmp_path / "repo")
    client = httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}, timeout=30
    )
    body = {"name": "Shop", "slug": "shop", "repos": [{"path": str(tmp_path / "repo")}]}
    assert client.post("/api/projects", json=body).status_code == 201
    for title in ("Cart total is wrong", "Add coupons"):
        made = client.post("/api/projects/shop/tickets", json={"title": title, "status": "inbox"})
        assert made.status_code == 201, made.text
    context = browser.new_context(
        viewport={"width": width, "height": height}, has_touch=True, is_mobile=True
    )
    page = context.new_page()
    try:
        page.goto(f"{server.url}/login#token={server.token}")
        page.wait_for_url(f"{server.url}/")
        page.goto(f"{server.url}/projects/shop/board")
        expect(page.get_by_test_id("column-inbox").get_by_test_id("ticket-1")).to_be_visible()
        cdp = context.new_cdp_session(page)

        # The next column peeks in at the right edge of the phone: drop #1 there.
        backlog = page.get_by_test_id("column-backlog").bounding_box()
        assert backlog is not None and backlog["x"] < width - 40
        touch_drag(cdp, center(page, "drag-1"), (width - 36, backlog["y"] + 60))
        expect(page.get_by_test_id("column-backlog").get_by_test_id("ticket-1")).to_be_visible()
        status = client.get("/api/projects/shop/tickets/1").json()["status"]
        assert status == "backlog"
        expect(page.get_by_test_id("drag-ghost")).to_have_count(0)

        # Dropped outside any column, or on its own column: nothing moves.
        touch_drag(cdp, center(page, "drag-2"), center(page, "new-ticket-title"))
        touch_drag(cdp, center(page, "drag-2"), center(page, "column-inbox"))
        page.wait_for_timeout(300)
        assert client.get("/api/projects/shop/tickets/2").json()["status"] == "inbox"
        expect(page.get_by_test_id("column-inbox").get_by_test_id("ticket-2")).to_be_visible()

        page.screenshot(path=str(screenshots / "phone-board-touch-drag.png"))
    finally:
        context.close()
        client.close()
