"""``codeyard mcp``: Codeyard's MCP server on stdio (a relay to the server's /mcp)."""

from __future__ import annotations

import anyio
import typer

from codeyard.cli.client import CliError
from codeyard.cli.state import get_state


def mcp(ctx: typer.Context) -> None:
    """Serve Codeyard's MCP tools on stdin/stdout, for MCP clients that launch a command.

    Messages are relayed to the running server's /mcp endpoint with the CLI's token (the one
    `codeyard login` stored for --server, else CODEYARD_TOKEN / the admin token), so each tool
    runs with that token's scopes. Example client configuration:

        {"command": "codeyard", "args": ["mcp"]}

    Tools: start_run, wait_run, send_message, get_run, list_runs, get_diff, decide_approval,
    land_run; resources codeyard://runs/{run}/transcript and codeyard://runs/{run}/diff.
    """
    state = get_state(ctx)
    target = state.target
    if not target.token:
        raise CliError(
            f"No token for {target.url}: run `codeyard login`, or pass --token / CODEYARD_TOKEN."
        )
    with state.client() as api:
        api.get("/api/health")  # unreachable: a clear error now, not a broken MCP session
    from codeyard.mcp_server.stdio import relay  # the MCP SDK: loaded only for this command

    anyio.run(relay, target.url, target.token)
