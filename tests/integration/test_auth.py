"""Signing in: first-run setup, passwords, sessions (cookies, CSRF, expiry), TOTP, rate limit."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pyotp
import pytest
import sqlalchemy as sa

from codeyard.services.auth import AuthState
from tests.conftest import TOKEN, Api
from tests.integration.test_bad_input import assert_problem
from tests.support.auth import PASSWORD, add_user, anonymous, sign_in

pytestmark = pytest.mark.anyio


def auth_state(api: Api) -> AuthState:
    state: AuthState = api.app.state.auth
    return state


class Clock:
    """A wall clock the test moves; installed as the auth state's clock."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def install_clock(api: Api) -> Clock:
    clock = Clock(time.time())
    auth_state(api).clock = clock
    return clock


def set_cookie_headers(resp: httpx.Response) -> dict[str, str]:
    return {h.split("=", 1)[0]: h for h in resp.headers.get_list("set-cookie")}


async def test_first_run_setup(api: Api) -> None:
    async with anonymous(api) as client:
        status = (await client.get("/api/auth/status")).json()
        assert status == {"setup_required": True, "authenticated": False, "user": None}
        assert (await client.get("/api/health")).json()["setup_required"] is True
        body = {"setup_code": "WRONG-CODE-0000", "username": "ada", "password": PASSWORD}
        assert_problem(await client.post("/api/auth/setup", json=body), 403, "setup code")
        body["setup_code"] = auth_state(api).setup_code.lower()  # case and dashes are forgiven
        resp = await client.post("/api/auth/setup", json=body)
        assert resp.status_code == 201, resp.text
        assert resp.json()["user"]["role"] == "admin"
        client.headers["X-CSRF-Token"] = resp.json()["csrf_token"]
        status = (await client.get("/api/auth/status")).json()
        assert status["setup_required"] is False
        assert status["user"]["user"]["username"] == "ada"
        assert (await client.get("/api/health")).json()["setup_required"] is False
        again = {**body, "username": "eve"}
        assert_problem(await client.post("/api/auth/setup", json=again), 409, "Set-up is done")
        # The first admin's session can do admin things.
        assert (await client.get("/api/users")).status_code == 200


async def test_login_cookies_csrf_and_logout(api: Api) -> None:
    await add_user(api, "bob", "member")
    async with anonymous(api) as client:
        wrong = {"username": "bob", "password": "not the password"}
        assert_problem(await client.post("/api/auth/login", json=wrong), 401, "not right")
        nobody = {"username": "nobody", "password": PASSWORD}
        assert_problem(await client.post("/api/auth/login", json=nobody), 401, "not right")
        resp = await client.post("/api/auth/login", json={"username": "bob", "password": PASSWORD})
        assert resp.status_code == 200, resp.text
        cookies = set_cookie_headers(resp)
        session = cookies["codeyard_session"].lower()
        assert "httponly" in session and "samesite=strict" in session and "secure" not in session
        assert "httponly" not in cookies["codeyard_csrf"].lower()
        csrf = resp.json()["csrf_token"]
        assert client.cookies["codeyard_csrf"] == csrf

        me = (await client.get("/api/auth/me")).json()
        assert me["user"]["username"] == "bob" and me["role"] == "member"
        assert "admin" not in me["scopes"] and "runs:write" in me["scopes"]
        # A cookie-authenticated write without the header, or with a wrong one: 403.
        token_body = {"name": "ci", "scopes": ["runs:read"]}
        assert_problem(await client.post("/api/tokens", json=token_body), 403, "X-CSRF-Token")
        bad = {"X-CSRF-Token": "forged"}
        resp = await client.post("/api/tokens", json=token_body, headers=bad)
        assert_problem(resp, 403, "X-CSRF-Token")
        good = {"X-CSRF-Token": csrf}
        assert (await client.post("/api/tokens", json=token_body, headers=good)).status_code == 201

        resp = await client.post("/api/auth/logout", headers=good)
        assert resp.status_code == 204
        assert_problem(await client.get("/api/auth/me"), 401)


async def test_session_cookie_is_secure_over_https(api: Api) -> None:
    await add_user(api, "sec", "viewer")
    transport = httpx.ASGITransport(app=api.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://localhost") as client:
        resp = await client.post("/api/auth/login", json={"username": "sec", "password": PASSWORD})
        assert resp.status_code == 200
        assert "secure" in set_cookie_headers(resp)["codeyard_session"].lower()


async def test_sessions_expire_when_idle_and_at_their_age_limit(api: Api) -> None:
    clock = install_clock(api)
    state = auth_state(api)
    await add_user(api, "cy", "member")
    async with sign_in(api, "cy") as client:
        clock.now += state.session_idle_seconds - 60
        assert (await client.get("/api/auth/me")).status_code == 200  # activity resets idle
        clock.now += state.session_idle_seconds - 60
        assert (await client.get("/api/auth/me")).status_code == 200
        clock.now += state.session_idle_seconds + 1
        assert_problem(await client.get("/api/auth/me"), 401, "expired")

    async with sign_in(api, "cy") as client:
        started = clock.now
        step = state.session_idle_seconds * 0.9
        while clock.now + step < started + state.session_max_seconds:
            clock.now += step
            assert (await client.get("/api/auth/me")).status_code == 200
        clock.now = started + state.session_max_seconds + 1
        assert_problem(await client.get("/api/auth/me"), 401, "expired")


async def test_admin_revokes_every_session_of_a_user(api: Api) -> None:
    user = await add_user(api, "dee", "member")
    async with sign_in(api, "dee") as first, sign_in(api, "dee") as second:
        assert (await first.get("/api/auth/me")).status_code == 200
        assert (await api.delete(f"/api/users/{user['id']}/sessions")).status_code == 204
        for client in (first, second):
            assert_problem(await client.get("/api/auth/me"), 401, "ended")


async def test_sixth_failure_in_a_minute_is_429_with_retry_after(api: Api) -> None:
    await add_user(api, "eve", "member")
    start = time.monotonic()
    auth_state(api).limiter.clock = lambda: start
    async with anonymous(api) as client:
        wrong = {"username": "eve", "password": "guess-guess"}
        for _ in range(5):
            assert (await client.post("/api/auth/login", json=wrong)).status_code == 401
        right = {"username": "eve", "password": PASSWORD}
        resp = await client.post("/api/auth/login", json=right)
        body = assert_problem(resp, 429, "try again")
        wait = int(resp.headers["retry-after"])
        assert wait == body["retry_after"]
        if auth_state(api).shared is None:
            assert wait == 60  # the test's clock stands still
        else:  # the database's clock does not: the first failure was a moment ago
            assert 45 <= wait <= 60
        # Token sign-in from the same address is limited too.
        resp = await client.post("/api/auth/token-login", json={"token": TOKEN})
        assert resp.status_code == 429
        if auth_state(api).shared is None:
            auth_state(api).limiter.clock = lambda: start + 61
        else:  # PostgreSQL counts on the database's clock (every API server reads the same)
            async with api.services.engine.begin() as conn:
                await conn.execute(sa.text("UPDATE auth_failures SET at = at - 61"))
        assert (await client.post("/api/auth/login", json=right)).status_code == 200


async def _enable_totp(client: httpx.AsyncClient, clock: Any) -> tuple[pyotp.TOTP, list[str]]:
    setup = (await client.post("/api/auth/mfa/setup")).json()
    assert setup["otpauth_uri"].startswith("otpauth://totp/Codeyard:")
    totp = pyotp.TOTP(setup["secret"])
    wrong = str((int(totp.at(clock.now)) + 1) % 1_000_000).zfill(6)
    assert_problem(await client.post("/api/auth/mfa/verify", json={"code": wrong}), 400)
    resp = await client.post("/api/auth/mfa/verify", json={"code": totp.at(clock.now)})
    assert resp.status_code == 200, resp.text
    codes: list[str] = resp.json()["recovery_codes"]
    return totp, codes


async def test_totp_codes_are_single_use_and_recovery_codes_too(api: Api) -> None:
    clock = install_clock(api)
    await add_user(api, "fay", "member")
    async with sign_in(api, "fay") as client:
        totp, codes = await _enable_totp(client, clock)
        assert len(codes) == 10 and len(set(codes)) == 10
        assert (await client.get("/api/auth/me")).json()["user"]["mfa_enabled"] is True
    async with api.services.engine.connect() as conn:
        stored = (
            await conn.execute(sa.text("SELECT totp_secret FROM users WHERE username = 'fay'"))
        ).scalar_one()
    assert stored.startswith("v1:") and totp.secret not in stored  # sealed at rest

    login = {"username": "fay", "password": PASSWORD}
    async with anonymous(api) as client:
        body = assert_problem(await client.post("/api/auth/login", json=login), 401, "totp_code")
        assert body["mfa_required"] is True
        # The code used to verify the set-up cannot sign in: same time step, a replay.
        resp = await client.post("/api/auth/login", json={**login, "totp_code": totp.at(clock.now)})
        assert_problem(resp, 401, "already used")
        clock.now += 30
        code = totp.at(clock.now)
        resp = await client.post("/api/auth/login", json={**login, "totp_code": code})
        assert resp.status_code == 200, resp.text
        resp = await client.post("/api/auth/login", json={**login, "totp_code": code})
        assert_problem(resp, 401, "already used")
        wrong = str((int(code) + 7) % 1_000_000).zfill(6)
        resp = await client.post("/api/auth/login", json={**login, "totp_code": wrong})
        assert_problem(resp, 401, "not valid")

        recovery = {**login, "totp_code": codes[0].upper()}
        assert (await client.post("/api/auth/login", json=recovery)).status_code == 200
        assert_problem(await client.post("/api/auth/login", json=recovery), 401)
        other = {**login, "totp_code": codes[1]}
        assert (await client.post("/api/auth/login", json=other)).status_code == 200

        client.headers["X-CSRF-Token"] = client.cookies["codeyard_csrf"]
        resp = await client.post("/api/auth/mfa/disable", json={"password": "wrong-password"})
        assert_problem(resp, 403, "password")
        resp = await client.post("/api/auth/mfa/disable", json={"password": PASSWORD})
        assert resp.json() == {"mfa_enabled": False}
    async with sign_in(api, "fay"):
        pass  # no second factor needed any more


async def test_password_change_ends_other_sessions(api: Api) -> None:
    await add_user(api, "gus", "viewer")
    async with sign_in(api, "gus") as client, sign_in(api, "gus") as other:
        change = {"current_password": "not-it-at-all", "new_password": "a new passphrase"}
        assert_problem(await client.post("/api/auth/password", json=change), 403, "password")
        short = {"current_password": PASSWORD, "new_password": "short"}
        assert_problem(await client.post("/api/auth/password", json=short), 422)
        change["current_password"] = PASSWORD
        assert (await client.post("/api/auth/password", json=change)).status_code == 200
        assert (await client.get("/api/auth/me")).status_code == 200
        assert_problem(await other.get("/api/auth/me"), 401)
    async with anonymous(api) as client:
        old = {"username": "gus", "password": PASSWORD}
        assert (await client.post("/api/auth/login", json=old)).status_code == 401
    async with sign_in(api, "gus", "a new passphrase"):
        pass


async def test_token_login_opens_a_session(api: Api) -> None:
    async with anonymous(api) as client:
        bad = await client.post("/api/auth/token-login", json={"token": "cy_nope"})
        assert_problem(bad, 401)
        resp = await client.post("/api/auth/token-login", json={"token": TOKEN})
        assert resp.status_code == 200
        me = (await client.get("/api/auth/me")).json()
        assert me["kind"] == "session" and me["role"] == "admin" and "admin" in me["scopes"]
        status = (await client.get("/api/auth/status")).json()
        assert status["authenticated"] is True

    await add_user(api, "hal", "member")
    async with sign_in(api, "hal") as client:
        pat = (
            await client.post("/api/tokens", json={"name": "ro", "scopes": ["runs:read"]})
        ).json()["token"]
    async with anonymous(api) as client:
        resp = await client.post("/api/auth/token-login", json={"token": pat})
        assert resp.status_code == 200
        me = (await client.get("/api/auth/me")).json()
        assert me["user"]["username"] == "hal" and me["scopes"] == ["runs:read"]


async def test_the_last_admin_stays(api: Api) -> None:
    admin = await add_user(api, "ivy", "admin")
    resp = await api.request("PATCH", f"/api/users/{admin['id']}", json={"role": "member"})
    assert_problem(resp, 409, "last admin")
    assert_problem(await api.delete(f"/api/users/{admin['id']}"), 409, "last admin")
    await add_user(api, "jon", "admin")
    assert (await api.delete("/api/users/ivy")).status_code == 204
    assert_problem(await api.get("/api/users/ivy"), 404)
    dup = {"username": "JON", "password": PASSWORD, "role": "viewer"}
    assert_problem(await api.post("/api/users", json=dup), 409, "exists")
