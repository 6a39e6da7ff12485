"""``codeyard mcp``: Codeyard's MCP server on stdio, for MCP clients that launch a command.

It relays JSON-RPC messages between stdin/stdout and the server's ``/mcp`` endpoint (the SDK's
own stdio and streamable-HTTP transports on each side), authenticated with the CLI's token. The
tools therefore run in the server, under the same scopes, policies and audit as over HTTP, and
a long ``wait_run`` is not cut by an HTTP client's timeout in between (humanlayer PR #452).
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import httpx2
from mcp.client.streamable_http import streamable_http_client
from mcp.server.stdio import stdio_server

from codeyard.mcp_server.mount import PATH

log = logging.getLogger(__name__)
#: Waits may last minutes: the read timeout is longer than wait_run's longest wait (300 s).
_TIMEOUT = httpx2.Timeout(30.0, read=360.0)


async def _pump(source: Any, sink: Any, what: str) -> None:
    """Forward messages until ``source`` ends; transport errors are logged, not forwarded."""
    async with sink:
        async for message in source:
            if isinstance(message, Exception):
                log.warning("MCP relay: %s transport error: %s", what, message)
                continue
            await sink.send(message)


async def relay(server_url: str, token: str) -> None:
    """Relay stdio to ``<server_url>/mcp`` until stdin closes."""
    url = server_url.rstrip("/") + PATH
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=_TIMEOUT) as http,
        streamable_http_client(url, http_client=http) as (remote_in, remote_out),
        stdio_server() as (local_in, local_out),
        anyio.create_task_group() as tg,
    ):

        async def upstream() -> None:
            await _pump(local_in, remote_out, "stdin")
            tg.cancel_scope.cancel()  # the client closed stdin: the session is over

        tg.start_soon(upstream)
        tg.start_soon(_pump, remote_in, local_out, "server")
