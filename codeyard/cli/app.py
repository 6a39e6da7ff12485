"""The ``codeyard`` Typer application: global options and the command table."""

from __future__ import annotations

from pathlib import Path

import typer

from codeyard import __version__
from codeyard.cli import (
    account,
    approvals,
    doctor,
    fake_llm,
    gc,
    review,
    runs,
    serve_command,
    users,
)
from codeyard.cli import mcp as mcp_cli
from codeyard.cli import worker as worker_cli
from codeyard.cli import workflows as workflows_cli
from codeyard.cli.state import CodeyardGroup, get_state

app = typer.Typer(
    name="codeyard",
    cls=CodeyardGroup,
    help="Codeyard: run AI coding agents in isolated git worktrees, follow them, land the result.",
    no_args_is_help=True,
    add_completion=False,
    # Markdown: a docstring paragraph is re-flowed to the terminal's width instead of keeping
    # the source's line breaks (which wrapped help mid-sentence on narrow terminals).
    rich_markup_mode="markdown",
    pretty_exceptions_show_locals=False,  # locals would include the bearer token
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"codeyard {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    ctx: typer.Context,
    server: str | None = typer.Option(
        None,
        "--server",
        envvar="CODEYARD_SERVER",
        show_default=False,
        help="Server URL. Default: the server of --data-dir (its server.json); without one, "
        "the server in ~/.codeyard if it runs, else the newest running `codeyard serve` "
        "(named on stderr), else http://127.0.0.1:8420.",
    ),
    data_dir: Path | None = typer.Option(
        None,
        "--data-dir",
        envvar="CODEYARD_DATA_DIR",
        file_okay=False,
        show_default=False,
        help="Data dir of the server to talk to (as given to `codeyard serve --data-dir`): its "
        "server.json and admin.token are used. Default: ~/.codeyard (or CODEYARD_HOME).",
    ),
    token: str | None = typer.Option(
        None,
        "--token",
        envvar="CODEYARD_TOKEN",
        show_default=False,
        help="API token. Default: CODEYARD_ADMIN_TOKEN, else `<data dir>/admin.token`.",
    ),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    state = get_state(ctx)
    if server:
        state.server = server
    if token:
        state.token = token
    if data_dir:
        state.data_dir = data_dir


app.command()(serve_command.serve)
app.command()(worker_cli.worker)
app.command()(runs.run)
app.command("ls")(runs.ls)
app.command()(runs.show)
app.command()(runs.logs)
app.command()(runs.msg)
app.command()(runs.start)
app.command()(runs.cancel)
app.command()(runs.pause)
app.command()(runs.resume)
app.command()(review.diff)
app.command()(review.land)
app.command()(review.checkpoints)
app.command()(review.restore)
app.command()(review.share)
app.command()(doctor.doctor)
app.command()(gc.gc)
app.command("mcp")(mcp_cli.mcp)
app.command()(approvals.approvals)
app.command()(approvals.approve)
app.command()(approvals.reject)
app.command()(approvals.trust)
app.command("fake-llm")(fake_llm.fake_llm)
app.command()(account.login)
app.command()(account.logout)
app.add_typer(account.token_app, name="token")
app.add_typer(users.users_app, name="users")
app.add_typer(workflows_cli.workflow_app, name="workflow")


def main() -> None:
    """The ``codeyard`` console script."""
    app()
