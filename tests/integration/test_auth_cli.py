"""`codeyard login`, `token`, `users` against a real server over the network."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyotp
import pytest
from click.testing import Result

from codeyard.cli.account import parse_duration
from codeyard.cli.client import CliError
from codeyard.cli.testing import invoke
from tests.support.server import TOKEN, ServerProcess

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path_factory.mktemp("auth-cli") / "data")
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def env(tmp_path: Path, server: ServerProcess) -> dict[str, str | None]:
    """The CLI's environment: its own config dir, the server's data dir, no admin token."""
    return {
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "CODEYARD_DATA_DIR": str(server.data_dir),
        "CODEYARD_ADMIN_TOKEN": None,
        "CODEYARD_TOKEN": None,
    }


def cy(
    server: ServerProcess,
    env: dict[str, str | None],
    *args: str,
    token: str | None = None,
    input: str | None = None,
) -> Result:
    return invoke(list(args), server=server.url, token=token, env=env, input=input)


def test_users_login_tokens_and_reset_mfa(
    server: ServerProcess, env: dict[str, str | None], tmp_path: Path
) -> None:
    added = cy(
        server,
        env,
        "users",
        "add",
        "alice",
        "--role",
        "member",
        "--password",
        PASSWORD,
        token=TOKEN,
    )
    assert added.exit_code == 0, added.output
    assert "Added alice (member)" in added.stdout
    listed = cy(server, env, "users", "list", token=TOKEN)
    assert "alice" in listed.stdout and "member" in listed.stdout

    result = cy(server, env, "login", "-u", "alice", input=f"{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert f"Signed in to {server.url} as alice." in result.stdout
    stored = tmp_path / "config" / "codeyard" / "credentials.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert cy(server, env, "ls").exit_code == 0  # with the stored token, no --token

    made = cy(server, env, "token", "create", "ci", "--scope", "runs:read", "--expires-in", "7d")
    assert made.exit_code == 0, made.output
    secret = made.stdout.strip()
    assert secret.startswith("cy_pat_")
    assert "not shown again" in made.stderr
    me = httpx.get(
        f"{server.url}/api/auth/me", headers={"Authorization": f"Bearer {secret}"}, timeout=30
    )
    assert me.json()["scopes"] == ["runs:read"]
    tokens = cy(server, env, "token", "list")
    assert "ci" in tokens.stdout and "runs:read" in tokens.stdout and secret not in tokens.stdout
    refused = cy(server, env, "users", "add", "mallory", "--password", PASSWORD)
    assert refused.exit_code == 1 and "admin" in refused.stderr

    # Alice turns on TOTP, loses her phone; an operator resets it on the server machine.
    with httpx.Client(base_url=server.url, timeout=30) as web:
        session = web.post("/api/auth/login", json={"username": "alice", "password": PASSWORD})
        web.headers["X-CSRF-Token"] = session.json()["csrf_token"]
        secret_b32 = web.post("/api/auth/mfa/setup").json()["secret"]
        code = pyotp.TOTP(secret_b32).now()
        assert web.post("/api/auth/mfa/verify", json={"code": code}).status_code == 200
    login = {"username": "alice", "password": PASSWORD}
    assert httpx.post(f"{server.url}/api/auth/login", json=login, timeout=30).status_code == 401
    reset = cy(server, env, "users", "reset-mfa", "alice")
    assert reset.exit_code == 0, reset.output
    assert "Two-factor sign-in is off for alice" in reset.stdout
    assert httpx.post(f"{server.url}/api/auth/login", json=login, timeout=30).status_code == 200
    missing = cy(server, env, "users", "reset-mfa", "nobody")
    assert missing.exit_code == 1 and "No user 'nobody'" in missing.stderr

    removed = cy(server, env, "users", "remove", "alice", token=TOKEN)
    assert removed.exit_code == 0, removed.output
    gone = cy(server, env, "ls")
    assert gone.exit_code == 1 and "codeyard login" in gone.stderr
    assert cy(server, env, "logout").stdout.startswith("Forgot the stored token")


def test_login_with_an_existing_token(server: ServerProcess, env: dict[str, str | None]) -> None:
    result = cy(server, env, "login", "--with-token", input=f"{TOKEN}\n")
    assert result.exit_code == 0, result.output
    assert "as admin" in result.stdout
    assert cy(server, env, "users", "list").exit_code == 0
    bad = cy(server, env, "login", "--with-token", input="cy_wrong\n")
    assert bad.exit_code == 1 and "not valid" in bad.stderr


def test_parse_duration() -> None:
    assert parse_duration("90m").total_seconds() == 5400
    assert parse_duration("2w").days == 14 and parse_duration("3").days == 3
    with pytest.raises(CliError):
        parse_duration("soon")
