"""``codeyard serve``: the one command that runs the server in this process.

The console script runs it through :func:`main`, a Typer app of this one command, without the
rest of the CLI: the client commands import httpx, Rich and their views, CPU that a server start
would spend for nothing (issue 15). ``codeyard --data-dir D serve`` (global options first) still
goes through the whole CLI, with the same result.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from codeyard.cli.errors import CliError, load_settings


def serve(
    host: str | None = typer.Option(
        None,
        "--host",
        help="Address to bind. Default: 127.0.0.1 (or CODEYARD_HOST).",
        show_default=False,
    ),
    port: int | None = typer.Option(
        None,
        "--port",
        min=1,
        max=65535,
        help="Port. Default: 8420 (or CODEYARD_PORT).",
        show_default=False,
    ),
    data_dir: Path | None = typer.Option(
        None,
        "--data-dir",
        file_okay=False,
        help="Where the database, worktrees and logs live. Default: ~/.codeyard "
        "(or CODEYARD_HOME / CODEYARD_DATA_DIR).",
        show_default=False,
    ),
    tls_cert: Path | None = typer.Option(
        None,
        "--tls-cert",
        dir_okay=False,
        help="Serve HTTPS with this PEM certificate (with --tls-key). Or CODEYARD_TLS_CERT.",
        show_default=False,
    ),
    tls_key: Path | None = typer.Option(
        None,
        "--tls-key",
        dir_okay=False,
        help="The certificate's PEM private key. Or CODEYARD_TLS_KEY.",
        show_default=False,
    ),
    behind_tls_proxy: bool | None = typer.Option(
        None,
        "--behind-tls-proxy",
        help="A proxy in front terminates TLS: no warning when --host is not loopback, and its "
        "X-Forwarded-For/-Proto headers are trusted from loopback (see --forwarded-allow-ips). "
        "Or CODEYARD_BEHIND_TLS_PROXY=1.",
        show_default=False,
    ),
    forwarded_allow_ips: str | None = typer.Option(
        None,
        "--forwarded-allow-ips",
        help="Comma-separated proxy addresses whose X-Forwarded-* headers are trusted (client "
        "address for sign-in limits, https for cookies). Without this or --behind-tls-proxy "
        "the headers are ignored. Or CODEYARD_FORWARDED_ALLOW_IPS.",
        show_default=False,
    ),
    executor: str | None = typer.Option(
        None,
        "--executor",
        help="Who runs the agents: 'local' (this process, the default) or 'temporal' (worker "
        "hosts started with `codeyard worker`; this server keeps no run state, so any number "
        "can serve one PostgreSQL database). Or CODEYARD_EXECUTOR.",
        show_default=False,
    ),
    temporal: str | None = typer.Option(
        None,
        "--temporal",
        help="Temporal frontend host:port for --executor temporal. Default: 127.0.0.1:7233 "
        "(or CODEYARD_TEMPORAL_ADDRESS). See docs/scale-out.md.",
        show_default=False,
    ),
) -> None:
    """Run the Codeyard server (API, web UI and agent executor) until Ctrl-C.

    Flags override CODEYARD_* environment variables.
    """
    if data_dir is not None:
        data_dir = data_dir.expanduser()
    overrides: dict[str, Any] = {
        "host": host,
        "port": port,
        "data_dir": data_dir,
        "tls_cert": tls_cert,
        "tls_key": tls_key,
        "behind_tls_proxy": behind_tls_proxy,
        "forwarded_allow_ips": forwarded_allow_ips,
        "executor": executor,
        "temporal_address": temporal,
    }
    settings = load_settings(**{k: v for k, v in overrides.items() if v is not None})
    # Imported here, not at the top: the server stack (FastAPI, SQLAlchemy, uvicorn) takes about
    # a second to import, and every other command (`codeyard ls`, …) only needs httpx.
    from codeyard.server import run_server

    run_server(settings)


def main(args: list[str]) -> None:
    """``codeyard serve ARGS`` as the console script runs it (see the module's docstring)."""
    app = typer.Typer(
        add_completion=False, rich_markup_mode="markdown", pretty_exceptions_show_locals=False
    )
    app.command()(serve)
    try:
        typer.main.get_command(app).main(args=args, prog_name="codeyard serve")
    except CliError as exc:  # printed as the whole CLI prints it (CodeyardGroup)
        from rich.console import Console

        from codeyard.cli.views import error_lines

        Console(stderr=True, highlight=False, soft_wrap=True).print(error_lines(exc))
        raise SystemExit(1) from None
