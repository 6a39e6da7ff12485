"""Offering Codeyard's own MCP server to the agents it runs (opt-in per agent profile).

A profile (or a run) with ``"codeyard_mcp": true`` in its provider options gets, at each turn,
an MCP server entry named ``codeyard`` pointing at this server's ``/mcp`` with a run token, so
the agent can start governed sub-runs (``services.delegation``). The token is minted per turn
and never stored; it stops working when the run rests. Claude Code reads ``mcp_servers`` as
it is; Codex (its ``mcp_servers`` configuration, the token in the environment) and the ACP
agents (``session/new``'s ``mcpServers``) get it translated by ``agents.mcp_servers``.

An ACP agent that does not speak MCP over HTTP (or a profile with ``"codeyard_mcp": "stdio"``)
gets the same server as a command instead: ``codeyard --server <url> mcp``, the stdio relay to
``/mcp``, with the run token in that command's environment only (``CODEYARD_TOKEN``). The agent
starts it inside the run's sandbox, like any tool it runs; the token never reaches a command
line, the worktree or a log, and the agent's own environment never holds it.
"""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path
from typing import Any

from codeyard.agents.mcp_servers import STDIO_KEY
from codeyard.config import Settings
from codeyard.crypto import secret_box
from codeyard.executor.turn_options import OptionHook
from codeyard.mcp_server.mount import PATH
from codeyard.services.delegation import OPT_IN, mint_run_token

SERVER_NAME = "codeyard"
#: The ``codeyard_mcp`` value that offers the server as a command only (ACP agents).
STDIO = "stdio"
log = logging.getLogger(__name__)


def endpoint_url(settings: Settings) -> str:
    if settings.mcp_url:
        return settings.mcp_url
    host = settings.host
    if host in ("0.0.0.0", "::", ""):  # a wildcard bind: the agent runs on this machine
        host = "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    scheme = "https" if settings.tls_cert else "http"
    return f"{scheme}://{host}:{settings.port}{PATH}"


def server_url(settings: Settings) -> str:
    """The server's base URL as ``codeyard --server`` takes it (the relay adds ``/mcp``)."""
    url = endpoint_url(settings)
    return url[: -len(PATH)] if url.endswith(PATH) else url


def cli_command() -> str | None:
    """The ``codeyard`` console script of this installation (next to its Python), else PATH's."""
    beside = Path(sys.executable).with_name("codeyard")
    return str(beside) if beside.is_file() else shutil.which("codeyard")


def stdio_entry(settings: Settings, token: str, cli: str) -> dict[str, Any]:
    """Codeyard's server as a command: the relay, the token in its environment only."""
    return {
        "command": cli,
        "args": ["--server", server_url(settings), "mcp"],
        "env": {"CODEYARD_TOKEN": token},
    }


def hook(settings: Settings) -> OptionHook:
    url = endpoint_url(settings)
    box = secret_box(settings.secret_key_path)
    cli = cli_command()

    def offer(run: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        choice = options.get(OPT_IN)
        if choice is not True and choice != STDIO:
            return options
        if options.get("network") == "none":  # its own loopback: this server is not on it
            log.warning(
                "run %s: network 'none' keeps its agent from Codeyard's MCP server", run["id"]
            )
        token = mint_run_token(box, run["id"])
        offered = dict(options)
        if choice is True:
            servers = dict(options.get("mcp_servers") or {})
            servers[SERVER_NAME] = {
                "type": "http",
                "url": url,
                "headers": {"Authorization": f"Bearer {token}"},
            }
            offered["mcp_servers"] = servers
        if cli is not None:  # for the ACP agents (others read mcp_servers only)
            offered[STDIO_KEY] = {SERVER_NAME: stdio_entry(settings, token, cli)}
        elif choice == STDIO:
            log.warning("run %s: no `codeyard` command to offer the MCP server with", run["id"])
        return offered

    return offer
