"""Sign-in by emailed code in the browser (issue 19): a real ``codeyard serve`` sending through
a real SMTP server on loopback (aiosmtpd); the person asks for a code on the login page, reads
it from the mail, and is signed in."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.support.server import ServerProcess
from tests.support.smtp import Mailbox, smtp_server

pytestmark = pytest.mark.slow  # a server process of its own: ~15-30 s


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with smtp_server() as box:
        yield box


@pytest.fixture
def mail_server(tmp_path: Path, mailbox: Mailbox) -> Iterator[ServerProcess]:
    env = {
        "CODEYARD_SMTP_HOST": "127.0.0.1",
        "CODEYARD_SMTP_PORT": str(mailbox.port),
        "CODEYARD_SMTP_SECURITY": "none",
    }
    srv = ServerProcess(tmp_path / "data", env=env)
    try:
        srv.start(timeout=120)
        yield srv
    finally:
        srv.stop()


def test_sign_in_with_an_emailed_code(
    browser: Browser, mail_server: ServerProcess, mailbox: Mailbox, screenshots: Path
) -> None:
    server = mail_server
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}, timeout=30
    ) as client:
        invited = client.post("/api/users/invite", json={"email": "eva@example.com"})
        assert invited.status_code == 201, invited.text
    assert "Email me a code" in str(mailbox.wait_for("eva@example.com").get_body(("plain",)))
    context = browser.new_context(viewport={"width": 390, "height": 844}, has_touch=True)
    page = context.new_page()
    try:
        page.goto(f"{server.url}/login")
        page.get_by_text("Email me a code").click()
        page.get_by_test_id("otp-email").fill("eva@example.com")
        page.get_by_test_id("otp-send").click()
        expect(page.get_by_text("a code is on its way")).to_be_visible()
        body = str(mailbox.wait_for("eva@example.com", 2).get_body(("plain",)))
        code = re.search(r"sign-in code is (\d{6})", body)
        assert code, body
        page.screenshot(path=str(screenshots / "phone-email-code.png"))
        page.get_by_test_id("otp-code").fill(code[1])
        page.get_by_test_id("otp-verify").click()
        page.wait_for_url(f"{server.url}/")
        me = page.evaluate("fetch('/api/auth/me').then(r => r.json())")
        assert me["user"]["username"] == "eva" and me["kind"] == "session"
    finally:
        context.close()
