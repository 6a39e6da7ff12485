"""``codeyard worker``: run this machine as a worker host of a Temporal-backed Codeyard."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import typer

from codeyard.cli.state import load_settings


def worker(
    temporal: str = typer.Option(
        ...,
        "--temporal",
        help="Temporal frontend address, host:port (e.g. 127.0.0.1:7233).",
    ),
    database: str = typer.Option(
        ...,
        "--database",
        help="The database the API servers use (a PostgreSQL URL such as "
        "postgresql+asyncpg://db/codeyard).",
    ),
    shared_remote: Path = typer.Option(
        ...,
        "--shared-remote",
        file_okay=False,
        help="A bare git repository on storage every worker reaches (NFS, or a path all "
        "workers mount): each turn's checkpoint is pushed there, and a run whose worker died "
        "is restored from it on another worker. Created if missing.",
    ),
    name: str | None = typer.Option(
        None,
        "--name",
        help="This host's name: its task queue is codeyard-host-NAME. Unique per worker. "
        "Default: the machine's hostname.",
        show_default=False,
    ),
    data_dir: Path | None = typer.Option(
        None,
        "--data-dir",
        file_okay=False,
        help="Where this host keeps worktrees and logs, and reads secret.key (copy it from the "
        "API server's data dir: env sets are decrypted here). Default: ~/.codeyard.",
        show_default=False,
    ),
    namespace: str = typer.Option("default", "--namespace", help="Temporal namespace."),
) -> None:
    """Run this machine as a worker host: take runs from the shared queue, drive their turns
    here, deliver messages, approvals and stops to them, push checkpoints to --shared-remote,
    and take over runs of workers that died. Runs until Ctrl-C or SIGTERM.

    The API servers run `codeyard serve --executor temporal` on the same database and Temporal
    address. See docs/scale-out.md.
    """
    # The providers the API servers offer are registered where the app is built: the same ones
    # run here (a worker that lacked one would fail the runs placed on it).
    import codeyard.app  # noqa: F401
    from codeyard.run_workspace.admission import limit_preparations
    from codeyard.services import sandbox as sandbox_service
    from codeyard.temporal.host import HostConfig
    from codeyard.temporal.worker import serve_host

    overrides: dict[str, object] = {"database_url": database}
    if data_dir is not None:
        overrides["data_dir"] = data_dir.expanduser()
    settings = load_settings(**overrides)
    settings.prepare_data_dir()
    limit_preparations(settings.preparation_concurrency)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    config = HostConfig(
        host=name or socket.gethostname(),
        database_url=database,
        worktree_root=settings.worktree_root,
        logs_root=settings.logs_root,
        secrets_key=settings.secret_key_path,
        shared_remote=shared_remote.expanduser().resolve(),
        default_permission_mode=settings.default_permission_mode,
        bash_timeout=settings.bash_timeout_seconds,
        sandbox=sandbox_service.base(settings),
        slots=settings.max_concurrent_runs,
    )
    asyncio.run(serve_host(config, temporal, namespace))
