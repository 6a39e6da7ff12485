"""Browser tests: Debian's Chromium driven by Playwright against a real ``codeyard serve``.

They need ``/usr/bin/chromium`` (``scripts/ensure-chromium.sh``) and the built UI
(``make ui``). Locally a missing one skips these tests; in CI (``CI=true``) it fails them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright, expect, sync_playwright

from tests.support.server import ServerProcess

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
BUILT_UI = ROOT / "codeyard" / "web" / "index.html"
SCREENSHOTS = ROOT / "bench" / "out" / "screenshots"

# ``expect`` retries its assertion for 5 s by default: the page of a server on a saturated CI
# machine (agent CLIs, other servers, another Chromium) can take longer to show what an action
# or an event changed. A failing assertion only takes longer to report.
expect.set_options(timeout=20_000)


def _require(ok: bool, why: str) -> None:
    if ok:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{why} (required in CI)")
    pytest.skip(why)


@pytest.fixture
def playwright() -> Iterator[Playwright]:
    """Per test: the sync API runs an event loop on this thread while it is open, and the
    anyio tests that follow need the thread free of it."""
    _require(CHROMIUM.exists(), "Chromium is missing: run scripts/ensure-chromium.sh")
    _require(BUILT_UI.exists(), "the web UI is not built: run `make ui`")
    with sync_playwright() as p:
        yield p


@pytest.fixture
def browser(playwright: Playwright) -> Iterator[Browser]:
    b = playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
    )
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path / "data")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
