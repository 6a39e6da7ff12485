"""Offering Codeyard's own MCP server to the agents it runs (opt-in per agent profile).

A profile (or a run) with ``"codeyard_mcp": true`` in its provider options gets, at each turn,
an MCP server entry named ``codeyard`` pointing at this server's ``/mcp`` with a run token, so
the agent can start governed sub-runs (``services.delegation``). The token is minted per turn
and never stored; it stops working when the run rests. Claude Code reads ``mcp_servers`` as
it is; Codex (its ``mcp_servers`` configuration, the token in the environment) and the ACP
agents (``session/new``'s ``mcpServers``) get it translated by ``agents.mcp_servers``.
"""

from __future__ import annotations

from typing import Any

from codeyard.config import Settings
from codeyard.crypto import secret_box
from codeyard.executor.turns import OptionHook
from codeyard.mcp_server.mount import PATH
from codeyard.services.delegation import OPT_IN, mint_run_token

SERVER_NAME = "codeyard"


def endpoint_url(settings: Settings) -> str:
    if settings.mcp_url:
        return settings.mcp_url
    host = settings.host
    if host in ("0.0.0.0", "::", ""):  # a wildcard bind: the agent runs on this machine
        host = "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    scheme = "https" if settings.tls_cert else "http"
    return f"{scheme}://{host}:{settings.port}{PATH}"


def hook(settings: Settings) -> OptionHook:
    url = endpoint_url(settings)
    box = secret_box(settings.secret_key_path)

    def offer(run: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
        if options.get(OPT_IN) is not True:
            return options
        token = mint_run_token(box, run["id"])
        servers = dict(options.get("mcp_servers") or {})
        servers[SERVER_NAME] = {
            "type": "http",
            "url": url,
            "headers": {"Authorization": f"Bearer {token}"},
        }
        return {**options, "mcp_servers": servers}

    return offer
