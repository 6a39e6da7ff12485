"""Talking to the running server over its Unix socket (``codeyard.cli_socket``): no token, the
socket file's permissions decide who may. Only the commands that must work when nobody can
sign in use it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from codeyard.cli.client import CliError

__all__ = ["NoSocket", "post"]


class NoSocket(Exception):
    """No server listens on the socket (not started, or started without it)."""


def post(path: Path, route: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST ``body`` to ``route`` over the socket at ``path``; a problem becomes a CliError."""
    if not path.is_socket():
        raise NoSocket(str(path))
    transport = httpx.HTTPTransport(uds=str(path))
    try:
        with httpx.Client(transport=transport, base_url="http://codeyard", timeout=30) as client:
            resp = client.post(route, json=body)
    except httpx.ConnectError as exc:  # a socket file left by a server that is gone
        raise NoSocket(str(path)) from exc
    except PermissionError as exc:
        raise CliError(
            f"Permission denied on {path}: run this as the user the Codeyard server runs as."
        ) from exc
    data: dict[str, Any] = resp.json()
    if resp.status_code >= 400:
        raise CliError(str(data.get("detail") or data))
    return data
