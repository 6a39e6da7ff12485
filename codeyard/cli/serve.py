"""``codeyard serve``: the one command that runs the server in this process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from codeyard.cli.state import load_settings


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
) -> None:
    """Run the Codeyard server (API, web UI and agent executor) until Ctrl-C.

    Flags override CODEYARD_* environment variables.
    """
    if data_dir is not None:
        data_dir = data_dir.expanduser()
    overrides: dict[str, Any] = {"host": host, "port": port, "data_dir": data_dir}
    settings = load_settings(**{k: v for k, v in overrides.items() if v is not None})
    # Imported here, not at the top: the server stack (FastAPI, SQLAlchemy, uvicorn) takes about
    # a second to import, and every other command (`codeyard ls`, …) only needs httpx.
    from codeyard.server import run_server

    run_server(settings)
