"""``codeyard serve`` inside the whole Typer CLI (``codeyard --data-dir D serve``, the help
walk): the same options and texts as the console script's fast path (``codeyard.cli.serve``)."""

from __future__ import annotations

from pathlib import Path

import typer

from codeyard.cli.serve import DESCRIPTION, HELP, start


def serve(
    host: str | None = typer.Option(None, "--host", help=HELP["host"], show_default=False),
    port: int | None = typer.Option(
        None, "--port", min=1, max=65535, help=HELP["port"], show_default=False
    ),
    data_dir: Path | None = typer.Option(
        None, "--data-dir", file_okay=False, help=HELP["data_dir"], show_default=False
    ),
    tls_cert: Path | None = typer.Option(
        None, "--tls-cert", dir_okay=False, help=HELP["tls_cert"], show_default=False
    ),
    tls_key: Path | None = typer.Option(
        None, "--tls-key", dir_okay=False, help=HELP["tls_key"], show_default=False
    ),
    behind_tls_proxy: bool | None = typer.Option(
        None, "--behind-tls-proxy", help=HELP["behind_tls_proxy"], show_default=False
    ),
    forwarded_allow_ips: str | None = typer.Option(
        None, "--forwarded-allow-ips", help=HELP["forwarded_allow_ips"], show_default=False
    ),
    executor: str | None = typer.Option(
        None, "--executor", help=HELP["executor"], show_default=False
    ),
    temporal: str | None = typer.Option(
        None, "--temporal", help=HELP["temporal"], show_default=False
    ),
) -> None:
    start(
        host=host,
        port=port,
        data_dir=data_dir,
        tls_cert=tls_cert,
        tls_key=tls_key,
        behind_tls_proxy=behind_tls_proxy,
        forwarded_allow_ips=forwarded_allow_ips,
        executor=executor,
        temporal=temporal,
    )


serve.__doc__ = DESCRIPTION
