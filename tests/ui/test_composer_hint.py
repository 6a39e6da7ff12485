"""The run page's composer hint fits its one line at 390x844 and 1440x900 (issue 14: "a cut-off
placeholder" — "Ask for changes (starts a new turn)…" wrapped on the phone and its second line
was hidden), and the composer stays in the window. Debian's Chromium against a real
``codeyard serve``; screenshots go to ``bench/out/screenshots``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Locator, expect

from tests.conftest import make_repo
from tests.support.server import ServerProcess

pytestmark = pytest.mark.slow  # a real server process and a browser

VIEWPORTS = {"phone": (390, 844), "desktop": (1440, 900)}
#: The text's width in the field's own font, and the width the field has for it.
MEASURE = """(el) => {
  const style = getComputedStyle(el);
  const ctx = document.createElement("canvas").getContext("2d");
  ctx.font = style.font;
  const room = el.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  return [ctx.measureText(el.placeholder).width, room];
}"""


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server with a patient start-up (the suite's machine is often saturated)."""
    srv = ServerProcess(tmp_path / "data")
    try:
        srv.start(timeout=120)
        yield srv
    finally:
        srv.stop()


def fits(field: Locator) -> tuple[float, float]:
    width, room = field.evaluate(MEASURE)
    assert width <= room, f"{field.get_attribute('placeholder')!r}: {width:.0f} px > {room:.0f}"
    return width, room


@pytest.mark.parametrize("viewport", sorted(VIEWPORTS))
def test_the_composer_hint_fits_on_one_line(
    browser: Browser, server: ServerProcess, tmp_path: Path, screenshots: Path, viewport: str
) -> None:
    width, height = VIEWPORTS[viewport]
    repo = make_repo(tmp_path / "repo")
    body = {
        "prompt": "Say hello",
        "repo_path": str(repo),
        "provider": "script",
        "agent_options": {"scenario": {"steps": [{"say": "Hello."}]}},
    }
    headers = {"Authorization": f"Bearer {server.token}"}
    resp = httpx.post(f"{server.url}/api/runs", json=body, headers=headers, timeout=30)
    assert resp.status_code == 201, resp.text
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    try:
        page.goto(f"{server.url}/login#token={server.token}")
        page.wait_for_url(f"{server.url}/")
        page.goto(f"{server.url}/runs/{resp.json()['number']}")
        expect(page.locator(".run-head [data-testid=run-status]")).to_have_attribute(
            "data-status", "review", timeout=30_000
        )
        field = page.get_by_label("Message")
        expect(field).to_have_attribute("placeholder", "Ask for changes (new turn)…")
        # What the short hint leaves out is the field's title.
        expect(field).to_have_attribute(
            "title", "Starts a new turn in the same session and worktree"
        )
        fits(field)
        # The composer is on screen, also for a newcomer with no admin yet (whose set-up banner
        # pushed it below the window on the desktop).
        expect(field).to_be_in_viewport(ratio=1)
        page.screenshot(path=str(screenshots / f"{viewport}-composer-hint.png"))
    finally:
        context.close()
