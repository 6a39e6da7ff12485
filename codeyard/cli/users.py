"""``codeyard users add|invite|role|list|remove|reset-password|reset-mfa``: user administration."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from codeyard.cli import socket_client
from codeyard.cli.client import CliError
from codeyard.cli.format import as_dict
from codeyard.cli.state import get_state
from codeyard.domain.errors import CodeyardError

users_app = typer.Typer(help="Users and their roles (admin, member, viewer).")
NameArg = typer.Argument(..., help="Username (or user id).", show_default=False)


@users_app.command("add")
def add(
    ctx: typer.Context,
    username: str = typer.Argument(..., help="The new user's name.", show_default=False),
    role: str = typer.Option("member", "--role", "-r", help="admin, member or viewer."),
    password: str | None = typer.Option(
        None,
        "--password",
        help="Their first password. Default: prompt (visible in shell history if given here).",
        show_default=False,
    ),
) -> None:
    """Create a user (needs an admin token or an admin's stored login)."""
    state = get_state(ctx)
    if password is None:
        password = typer.prompt(
            f"Password for {username}", hide_input=True, confirmation_prompt=True, err=True
        )
    body = {"username": username, "password": password, "role": role}
    with state.client() as api:
        user = as_dict(api.post("/api/users", body))
    state.out.print(Text(f"Added {user['username']} ({user['role']}), id {user['id']}.", "green"))


@users_app.command("invite")
def invite(
    ctx: typer.Context,
    email: str = typer.Argument(..., help="Where the invitation goes.", show_default=False),
    role: str = typer.Option("member", "--role", "-r", help="admin, member or viewer."),
    username: str | None = typer.Option(
        None, "--username", help="Default: the part of the email before '@'.", show_default=False
    ),
) -> None:
    """Invite someone by email: they sign in with a one-time code sent there ("Email me a
    code" on the login page). Needs the server's SMTP settings (CODEYARD_SMTP_HOST …).

    Example: codeyard users invite ana@example.com --role viewer
    """
    state = get_state(ctx)
    body: dict[str, str] = {"email": email, "role": role}
    if username:
        body["username"] = username
    with state.client() as api:
        user = as_dict(api.post("/api/users/invite", body))
    state.out.print(
        Text(f"Invited {user['email']} as {user['username']} ({user['role']}).", "green")
    )


@users_app.command("role")
def set_role(
    ctx: typer.Context,
    username: str = NameArg,
    role: str = typer.Argument(..., help="admin, member or viewer.", show_default=False),
) -> None:
    """Change a user's role (recorded in the audit log; the last admin cannot be demoted).

    Example: codeyard users role ana admin
    """
    state = get_state(ctx)
    with state.client() as api:
        user = as_dict(
            api.request("PATCH", f"/api/users/{username}/role", json_body={"role": role})
        )
    state.out.print(f"{user['username']} is now {user['role']}.")


@users_app.command("list")
def list_users(ctx: typer.Context) -> None:
    """Every user with their role and whether two-factor sign-in is on."""
    state = get_state(ctx)
    with state.client() as api:
        rows = list(api.pages("/api/users", limit=10_000))
    if not rows:
        state.out.print("No users yet. The first admin is created at first sign-in (setup code).")
        return
    table = Table(box=None, header_style="bold")
    table.add_column("id", no_wrap=True)
    for column in ("username", "role", "2fa", "created"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["id"],
            row["username"],
            row["role"],
            "on" if row.get("mfa_enabled") else "off",
            str(row.get("created_at") or "")[:16].replace("T", " "),
        )
    state.out.print(table)


@users_app.command("remove")
def remove(ctx: typer.Context, username: str = NameArg) -> None:
    """Delete a user with their sessions and tokens (their runs stay)."""
    state = get_state(ctx)
    with state.client() as api:
        api.request("DELETE", f"/api/users/{username}")
    state.out.print(f"Removed {username}.")


def _socket(ctx: typer.Context) -> Path:
    from codeyard.cli_socket.server import socket_path  # no server stack: a path only

    return socket_path(get_state(ctx).settings)


@users_app.command("reset-password")
def reset_password(
    ctx: typer.Context,
    username: str = NameArg,
    password: str | None = typer.Option(
        None,
        "--password",
        help="The new password. Default: prompt (visible in shell history if given here).",
        show_default=False,
    ),
) -> None:
    """Give a user a new password when nobody can sign in (their sessions end).

    Sent to the running server over its Unix socket (DATA_DIR/run/cli.sock): run it as the
    user the server runs as, on the server's machine. The socket's file permissions are the
    authentication; there is no HTTP route for this.
    """
    state = get_state(ctx)
    if password is None:
        password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    try:
        user = socket_client.post(
            _socket(ctx), "/auth/cli/reset-password", {"username": username, "password": password}
        )
    except socket_client.NoSocket as exc:
        raise CliError(
            f"No Codeyard server listens on {exc}: start it (codeyard serve) with this data "
            "directory (--data-dir / CODEYARD_DATA_DIR), then run this again."
        ) from None
    state.out.print(
        Text(f"New password set for {user['username']}; their sessions ended.", "green")
    )


@users_app.command("reset-mfa")
def reset_mfa(ctx: typer.Context, username: str = NameArg) -> None:
    """Turn off a user's two-factor sign-in (a lost phone); their sessions end.

    Through the running server's Unix socket (DATA_DIR/run/cli.sock, its file permissions
    as the authentication) when it listens, else on the server's data directly
    (CODEYARD_DATA_DIR / CODEYARD_DATABASE_URL). There is no HTTP route for it.
    """
    state = get_state(ctx)
    try:
        user = socket_client.post(_socket(ctx), "/auth/cli/reset-mfa", {"username": username})
    except socket_client.NoSocket:
        # Imported here, like `serve`: the database stack is slow to import and no other
        # users command needs it.
        from codeyard.services.users import reset_mfa_offline

        try:
            user = asyncio.run(reset_mfa_offline(state.settings, username))
        except CodeyardError as exc:
            raise CliError(exc.detail) from None
    state.out.print(
        Text(f"Two-factor sign-in is off for {user['username']}; their sessions ended.", "green")
    )
