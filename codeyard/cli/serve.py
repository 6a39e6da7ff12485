"""``codeyard serve``: the one command that runs the server in this process.

The console script runs it through :func:`main`, with :mod:`argparse`: the rest of the CLI (its
client commands import httpx, Rich and their views) and Typer itself are CPU that a server
start would spend for nothing (issue 15). ``codeyard --data-dir D serve`` (global options
first) goes through the whole Typer CLI (``codeyard.cli.serve_command``), which takes the same
options with the same help texts (:data:`HELP`) and ends in the same :func:`start`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from codeyard.cli.errors import CliError, load_settings

#: What the command does (its ``--help`` description).
DESCRIPTION = (
    "Run the Codeyard server (API, web UI and agent executor) until Ctrl-C.\n\n"
    "Flags override CODEYARD_* environment variables."
)
#: Each option's help, shared by both ways in (argparse here, Typer in ``serve_command``).
HELP: dict[str, str] = {
    "host": "Address to bind. Default: 127.0.0.1 (or CODEYARD_HOST).",
    "port": "Port. Default: 8420 (or CODEYARD_PORT).",
    "data_dir": "Where the database, worktrees and logs live. Default: ~/.codeyard "
    "(or CODEYARD_HOME / CODEYARD_DATA_DIR).",
    "tls_cert": "Serve HTTPS with this PEM certificate (with --tls-key). Or CODEYARD_TLS_CERT.",
    "tls_key": "The certificate's PEM private key. Or CODEYARD_TLS_KEY.",
    "behind_tls_proxy": "A proxy in front terminates TLS: no warning when --host is not "
    "loopback, and its X-Forwarded-For/-Proto headers are trusted from loopback (see "
    "--forwarded-allow-ips). Or CODEYARD_BEHIND_TLS_PROXY=1.",
    "forwarded_allow_ips": "Comma-separated proxy addresses whose X-Forwarded-* headers are "
    "trusted (client address for sign-in limits, https for cookies). Without this or "
    "--behind-tls-proxy the headers are ignored. Or CODEYARD_FORWARDED_ALLOW_IPS.",
    "executor": "Who runs the agents: 'local' (this process, the default) or 'temporal' "
    "(worker hosts started with `codeyard worker`; this server keeps no run state, so any "
    "number can serve one PostgreSQL database). Or CODEYARD_EXECUTOR.",
    "temporal": "Temporal frontend host:port for --executor temporal. Default: 127.0.0.1:7233 "
    "(or CODEYARD_TEMPORAL_ADDRESS). See docs/scale-out.md.",
}


def start(
    *,
    host: str | None = None,
    port: int | None = None,
    data_dir: Path | None = None,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    behind_tls_proxy: bool | None = None,
    forwarded_allow_ips: str | None = None,
    executor: str | None = None,
    temporal: str | None = None,
) -> None:
    """Settings from ``CODEYARD_*`` with the options given on top; serve until interrupted."""
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
    # a second to import, and `codeyard serve --help` or a bad setting needs none of it.
    from codeyard.server import run_server

    run_server(settings)


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a valid integer.") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not in the range 1<=x<=65535.")
    return value


def _directory(text: str) -> Path:
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"Directory '{text}' is a file.")
    return path


def _file(text: str) -> Path:
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"File '{text}' is a directory.")
    return path


def parser() -> argparse.ArgumentParser:
    """The command's options, as the Typer command declares them."""
    ap = argparse.ArgumentParser(
        prog="codeyard serve",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,  # as the Typer command: `--po` is not `--port`
    )
    ap.add_argument("--host", metavar="HOST", help=HELP["host"])
    ap.add_argument("--port", type=_port, metavar="PORT", help=HELP["port"])
    ap.add_argument("--data-dir", type=_directory, metavar="DIR", help=HELP["data_dir"])
    ap.add_argument("--tls-cert", type=_file, metavar="FILE", help=HELP["tls_cert"])
    ap.add_argument("--tls-key", type=_file, metavar="FILE", help=HELP["tls_key"])
    ap.add_argument(
        "--behind-tls-proxy", action="store_true", default=None, help=HELP["behind_tls_proxy"]
    )
    ap.add_argument("--forwarded-allow-ips", metavar="IPS", help=HELP["forwarded_allow_ips"])
    ap.add_argument("--executor", metavar="KIND", help=HELP["executor"])
    ap.add_argument("--temporal", metavar="HOST:PORT", help=HELP["temporal"])
    return ap


def main(args: Sequence[str]) -> None:
    """``codeyard serve ARGS`` as the console script runs it (see the module's docstring)."""
    options = parser().parse_args(list(args))
    try:
        start(**vars(options))
    except CliError as exc:  # printed as the whole CLI prints it (CodeyardGroup)
        from rich.console import Console

        from codeyard.cli.views import error_lines

        Console(stderr=True, highlight=False, soft_wrap=True).print(error_lines(exc))
        raise SystemExit(1) from None
