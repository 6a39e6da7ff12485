"""``codeyard login`` / ``logout`` and ``codeyard token create|list|revoke``."""

from __future__ import annotations

import re
import socket
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from codeyard.cli.client import ApiClient, ApiError, CliError, Target
from codeyard.cli.credentials import forget_token, store_token
from codeyard.cli.format import as_dict
from codeyard.cli.state import CliState, get_state

SCOPES_HELP = (
    "runs:read, runs:write, runs:control, approvals:resolve, git:merge, git:push, "
    "settings:read, settings:write, admin. Repeat the option for several."
)
_DURATION = re.compile(r"^\s*(\d+)\s*([mhdw]?)\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks", "": "days"}


def parse_duration(text: str) -> timedelta:
    """``90m``, ``12h``, ``30d``, ``2w`` (a bare number is days)."""
    match = _DURATION.match(text.lower())
    if match is None or int(match.group(1)) == 0:
        raise CliError(f"'{text}' is not a duration: use e.g. 90m, 12h, 30d or 2w.")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _anonymous(state: CliState) -> ApiClient:
    target = state.target
    return ApiClient(Target(target.url, None, target.source), transport=state.transport)


def _password_session(api: ApiClient, username: str) -> dict[str, Any]:
    """Sign in with a password (and a TOTP code when asked); returns the login answer."""
    password = typer.prompt("Password", hide_input=True, err=True)
    body: dict[str, Any] = {"username": username, "password": password}
    try:
        return as_dict(api.post("/api/auth/login", body))
    except ApiError as exc:
        if exc.status != 401 or not exc.problem.get("mfa_required"):
            raise
    body["totp_code"] = typer.prompt("Two-factor code (or a recovery code)", err=True)
    return as_dict(api.post("/api/auth/login", body))


def login(
    ctx: typer.Context,
    username: str | None = typer.Option(
        None, "--username", "-u", help="Sign in as this user (prompts for the password)."
    ),
    with_token: bool = typer.Option(
        False, "--with-token", help="Read an existing token from stdin and store it instead."
    ),
) -> None:
    """Sign in and store a personal access token for this server (in ~/.config/codeyard).

    With a password, a token named after this machine is created with your role's scopes.
    """
    state = get_state(ctx)
    url = state.target.url
    if with_token:
        token = sys.stdin.readline().strip()
        if not token:
            raise CliError(
                "No token on stdin: pipe one in, e.g. `codeyard login --with-token < f`."
            )
        with ApiClient(Target(url, token, "stdin"), transport=state.transport) as api:
            me = as_dict(api.get("/api/auth/me"))
    else:
        name = username or typer.prompt("Username", err=True)
        with _anonymous(state) as api:
            session = _password_session(api, name)
            api.set_header("X-CSRF-Token", str(session.get("csrf_token") or ""))
            me = as_dict(api.get("/api/auth/me"))
            body = {
                "name": f"codeyard CLI on {socket.gethostname()}"[:200],
                "scopes": me.get("scopes") or [],
            }
            token = str(as_dict(api.post("/api/tokens", body))["token"])
            api.post("/api/auth/logout")
    path = store_token(url, token)
    who = (me.get("user") or {}).get("username") or me.get("name")
    state.out.print(Text(f"Signed in to {url} as {who}.", style="green"))
    state.out.print(Text(f"Token stored in {path}.", style="dim"))


def logout(ctx: typer.Context) -> None:
    """Forget the token `codeyard login` stored for this server (revoke it with `token revoke`)."""
    state = get_state(ctx)
    if forget_token(state.target.url):
        state.out.print(f"Forgot the stored token for {state.target.url}.")
    else:
        state.out.print(f"No stored token for {state.target.url}.")


token_app = typer.Typer(help="Personal access tokens for scripts and other machines.")


@token_app.command("create")
def token_create(
    ctx: typer.Context,
    name: str = typer.Argument("cli", help="A name to recognise the token by."),
    scope: list[str] = typer.Option(..., "--scope", "-s", help=SCOPES_HELP, show_default=False),
    expires_in: str | None = typer.Option(
        None, "--expires-in", help="e.g. 12h, 30d, 2w. Default: never.", show_default=False
    ),
) -> None:
    """Create a token and print it once (it cannot be shown again)."""
    state = get_state(ctx)
    body: dict[str, Any] = {"name": name, "scopes": scope}
    if expires_in:
        expires = datetime.now(UTC) + parse_duration(expires_in)
        body["expires_at"] = expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    with state.client() as api:
        row = as_dict(api.post("/api/tokens", body))
    state.out.print(str(row["token"]), soft_wrap=True)
    state.err.print(
        Text(
            f"Token {row['id']} ({', '.join(row['scopes'])}"
            f"{', expires ' + str(row['expires_at']) if row.get('expires_at') else ''}). "
            "Copy it now: it is not shown again.",
            style="dim",
        )
    )


@token_app.command("list")
def token_list(ctx: typer.Context) -> None:
    """Your tokens (their prefixes; secrets are never shown again)."""
    state = get_state(ctx)
    with state.client() as api:
        rows = as_dict(api.get("/api/tokens")).get("data") or []
    if not rows:
        state.out.print("No tokens.")
        return
    table = Table(box=None, header_style="bold")
    table.add_column("id", no_wrap=True)
    for column in ("name", "prefix", "scopes", "expires", "last used"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["id"],
            row["name"],
            row["prefix"] + "…",
            ", ".join(row["scopes"]),
            (row.get("expires_at") or "never")[:16].replace("T", " "),
            (row.get("last_used_at") or "—")[:16].replace("T", " "),
        )
    state.out.print(table)


@token_app.command("revoke")
def token_revoke(
    ctx: typer.Context, token_id: str = typer.Argument(..., help="Token id (tok_…).")
) -> None:
    """Revoke a token at once."""
    state = get_state(ctx)
    with state.client() as api:
        api.request("DELETE", f"/api/tokens/{token_id}")
    state.out.print(f"Revoked {token_id}.")
