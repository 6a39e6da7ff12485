"""The CLI's Unix socket (issue 22, CodePiper's): bound 0600 in a 0700 directory beside the
data, it resets a user's password or two-factor sign-in for whoever can open it — the
server's OS user — and those routes exist nowhere over HTTP. Through a real socket, the real
``codeyard users`` commands, and sign-in through the API afterwards."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from typer.testing import CliRunner

from codeyard.cli.app import app as cli_app
from codeyard.cli_socket import socket_path
from codeyard.config import Settings
from tests.conftest import TOKEN, Api, running_api
from tests.support.auth import PASSWORD, add_user, anonymous

pytestmark = pytest.mark.anyio
NEW = "a brand new passphrase"


async def _socket_post(path: Path, route: str, body: dict[str, Any]) -> httpx.Response:
    transport = httpx.AsyncHTTPTransport(uds=str(path))
    async with httpx.AsyncClient(transport=transport, base_url="http://codeyard") as client:
        return await client.post(route, json=body)


async def _login(api: Api, username: str, password: str) -> int:
    async with anonymous(api) as client:
        resp = await client.post(
            "/api/auth/login", json={"username": username, "password": password}
        )
        return resp.status_code


def _cli(data_dir: Path, *args: str) -> Any:
    env = {"CODEYARD_DATA_DIR": str(data_dir), "CODEYARD_ADMIN_TOKEN": TOKEN}
    return CliRunner().invoke(cli_app, list(args), env=env)


async def test_the_socket_resets_a_password_and_two_factor_sign_in(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d", admin_token=TOKEN)
    path = socket_path(settings)
    async with running_api(settings) as api:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600 and path.is_socket()
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        await add_user(api, "ann", "member")
        assert await _login(api, "ann", PASSWORD) == 200

        done = await _socket_post(
            path, "/auth/cli/reset-password", {"username": "ann", "password": NEW}
        )
        assert done.status_code == 200, done.text
        assert done.json()["username"] == "ann" and done.json()["sessions_ended"] is True
        assert await _login(api, "ann", PASSWORD) == 401
        assert await _login(api, "ann", NEW) == 200
        log = (await api.get("/api/audit-log")).json()["data"]
        resets = [row for row in log if row["action"] == "user.password_reset"]
        assert len(resets) == 1, log
        assert resets[0]["actor"] == "cli-socket" and resets[0]["details"] == {"username": "ann"}
        assert NEW not in str(log)  # the password itself is never audited

        mfa = await _socket_post(path, "/auth/cli/reset-mfa", {"username": "ann"})
        assert mfa.status_code == 200 and mfa.json()["mfa_enabled"] is False
        audit = (await api.get("/api/audit-log")).json()
        assert any(row["action"] == "user.mfa_reset" for row in audit["data"]), audit

        # Bad input: problems naming the fix; nothing changed.
        nobody = await _socket_post(path, "/auth/cli/reset-mfa", {"username": "nobody"})
        assert nobody.status_code == 404 and "No user" in nobody.json()["detail"]
        short = await _socket_post(
            path, "/auth/cli/reset-password", {"username": "ann", "password": "x"}
        )
        assert short.status_code == 422
        assert await _login(api, "ann", NEW) == 200

        # Not over HTTP, not even for the admin token.
        for route in ("/auth/cli/reset-password", "/api/auth/cli/reset-password"):
            over_http = await api.post(route, json={"username": "ann", "password": NEW})
            assert over_http.status_code in (404, 405), (route, over_http.status_code)

        # The real CLI commands, talking to the socket (in a thread: the server runs in this
        # test's event loop).
        result = await anyio.to_thread.run_sync(
            lambda: _cli(
                settings.data_dir, "users", "reset-password", "ann", "--password", PASSWORD
            )
        )
        assert result.exit_code == 0, result.output
        assert "New password set for ann" in result.output
        assert await _login(api, "ann", PASSWORD) == 200
        result = await anyio.to_thread.run_sync(
            lambda: _cli(settings.data_dir, "users", "reset-mfa", "ann")
        )
        assert result.exit_code == 0 and "Two-factor sign-in is off for ann" in result.output
    assert not path.exists()  # removed when the server stops


async def test_without_a_server_the_cli_says_how_to_reach_one(tmp_path: Path) -> None:
    result = await anyio.to_thread.run_sync(
        lambda: _cli(tmp_path / "empty", "users", "reset-password", "ann", "--password", NEW)
    )
    assert result.exit_code != 0
    assert "No Codeyard server listens on" in result.output and "codeyard serve" in result.output


async def test_the_socket_can_be_switched_off(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d", admin_token=TOKEN, cli_socket=False)
    async with running_api(settings) as api:
        assert (await api.get("/api/health")).status_code == 200
        assert not socket_path(settings).exists()
