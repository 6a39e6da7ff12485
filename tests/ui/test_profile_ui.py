"""Settings → Account at phone size (issue 19): a signed-in user sets a display name and time
zone and makes an SSH key; the page shows the public key and the fingerprint the server stored
(never the private key); Settings → Users shows the display name to the admin."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.support.server import ServerProcess

pytestmark = pytest.mark.slow  # a server process of its own

PASSWORD = "correct horse battery staple 42"


def tiny_png() -> bytes:
    """A valid 2x2 red PNG (so the browser really decodes and shows it)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + b"\xff\x00\x00" * 2 for _ in range(2))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path / "data")
    try:
        srv.start(timeout=120)
        yield srv
    finally:
        srv.stop()


def test_profile_and_ssh_key(browser: Browser, server: ServerProcess, screenshots: Path) -> None:
    admin = httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}, timeout=30
    )
    body = {"username": "fia", "password": PASSWORD, "role": "member"}
    assert admin.post("/api/users", json=body).status_code == 201
    context = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True)
    page = context.new_page()
    try:
        page.goto(f"{server.url}/login")
        page.get_by_label("Username").fill("fia")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in", exact=True).click()
        page.wait_for_url(f"{server.url}/")
        page.goto(f"{server.url}/settings/account")
        form = page.get_by_test_id("profile")
        form.get_by_label("Display name").fill("Fia Lund")
        form.get_by_label("Time zone").fill("Mars/Olympus")
        form.get_by_role("button", name="Save profile").click()
        expect(form).to_contain_text("IANA time zone")  # the server's 422, shown as is
        form.get_by_label("Time zone").fill("Europe/Stockholm")
        form.get_by_role("button", name="Save profile").click()
        expect(form.get_by_role("status")).to_have_text("Saved.")

        page.get_by_test_id("avatar-file").set_input_files(
            files=[{"name": "me.png", "mimeType": "image/png", "buffer": tiny_png()}]
        )
        avatar = page.get_by_test_id("avatar")
        expect(avatar).to_be_visible()
        # Decoded by the browser (a broken image has naturalWidth 0).
        # (Not wait_for_function with a string: when not true at once, Playwright polls it
        # through eval, which the page's CSP refuses.)
        expect(avatar).to_have_js_property("naturalWidth", 2, timeout=30_000)

        page.get_by_test_id("ssh-make").click()
        shown = page.get_by_test_id("ssh-public-key")
        expect(shown).to_contain_text("ssh-ed25519 ")
        page.screenshot(path=str(screenshots / "phone-profile-ssh-key.png"), full_page=True)
        assert "PRIVATE" not in page.content()
        stored = page.evaluate("fetch('/api/me/ssh-key').then(r => r.json())")
        expect(shown).to_have_text(stored["public_key"])
        expect(page.get_by_test_id("ssh-key")).to_contain_text(stored["fingerprint"])
        users = admin.get("/api/users").json()["data"]
        assert [(u["username"], u["display_name"]) for u in users] == [("fia", "Fia Lund")]
        # The admin's user list shows it too (the admin token, through the login URL).
        page.goto(f"{server.url}/login#token={server.token}")
        page.wait_for_url(f"{server.url}/")
        page.goto(f"{server.url}/settings/users")
        expect(page.get_by_test_id("user")).to_contain_text("Fia Lund")
    finally:
        context.close()
        admin.close()
