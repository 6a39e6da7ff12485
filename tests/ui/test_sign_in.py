"""Signing in without the login URL: first-run setup in the browser, two-factor enrolment from
Settings, then a password + authenticator sign-in (a recovery code also works)."""

from __future__ import annotations

import re
import time

import pyotp
import pytest
from playwright.sync_api import Browser, expect

from tests.support.server import ServerProcess

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery staple 42"


def setup_code(server: ServerProcess) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = re.search(r"setup code (\S+)", server.log_tail(200))
        if found:
            return found[1]
        time.sleep(0.1)
    raise AssertionError(f"no setup code in the server log:\n{server.log_tail()}")


def test_setup_password_and_totp(browser: Browser, server: ServerProcess) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        page.goto(f"{server.url}/runs/new")
        page.wait_for_url("**/login?next=%2Fruns%2Fnew")  # signed out: sent to sign in
        page.get_by_label("Setup code").fill(setup_code(server))
        page.get_by_label("Username").fill("ada")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Create account").click()
        expect(page.get_by_role("heading", name="New run")).to_be_visible()  # back where it was

        page.goto(f"{server.url}/settings/account")
        expect(page.get_by_test_id("account")).to_contain_text("ada")
        page.get_by_role("button", name="Set up two-factor").click()
        secret = page.get_by_test_id("totp-secret").inner_text()
        page.get_by_label("Code from the app").fill(pyotp.TOTP(secret).now())
        page.get_by_role("button", name="Turn on").click()
        recovery = page.get_by_test_id("recovery-codes").inner_text().split()
        assert recovery

        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url("**/login")
        page.get_by_label("Username").fill("ada")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_be_visible()  # the code is required now
        page.get_by_label("Authenticator code").fill(recovery[0])
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Runs")).to_be_visible()
    finally:
        context.close()
