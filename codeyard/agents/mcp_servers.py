"""MCP servers for the agents Codeyard runs, written the way each CLI takes them.

Options carry MCP servers in one shape, Claude Code's (``{name: {"type": "http", "url": …,
"headers": {…}}}``): a profile's ``provider_config.mcp_servers``, and the entry ``codeyard``
that ``mcp_server.offer`` adds with a run token when a profile opts in (``codeyard_mcp``).
Claude Code takes that shape as it is; this module translates it for the others:

* Codex: configuration overrides (``mcp_servers.<name>.url`` …). A bearer token goes into the
  process environment and Codex is told its variable (``bearer_token_env_var``), so the token
  is never on a command line another user could read with ``ps``;
* ACP agents: the ``mcpServers`` list of ``session/new`` / ``session/load`` (``{type: "http",
  name, url, headers: [{name, value}]}``), for agents whose ``initialize`` answer says they
  speak MCP over HTTP (every pinned one does: Gemini CLI, Copilot CLI, OpenCode, Qwen Code,
  Kilo, claude-acp, codex-acp). Every ACP agent speaks MCP over stdio, so one that does not
  speak HTTP still gets Codeyard's own server as a command (``{name, command, args, env}``):
  ``codeyard mcp``, a relay to ``/mcp``, with the run token in its environment
  (``STDIO_KEY``, added per turn by ``mcp_server.offer``); ``codeyard_mcp: "stdio"`` asks for
  that path whatever the agent says. A profile's other HTTP servers are left out for such an
  agent (the turn logs a warning rather than failing).

Profiles name HTTP servers only: a stdio server they named would be a command of their
choosing. The one stdio server is Codeyard's own, started by the agent inside the run's
sandbox like every tool it runs, and reaching the server the way the agent itself would.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["STDIO_KEY", "acp_servers", "codex_config", "errors", "http_servers", "stdio_servers"]

#: The option that carries Codeyard's own server as a command (``mcp_server.offer``): set per
#: turn, never by a profile or a run (``errors`` refuses it).
STDIO_KEY = "codeyard_mcp_stdio"
#: ``codeyard_mcp`` values: off, on (HTTP where the agent speaks it), or stdio (ACP agents).
_OPT_IN = (None, True, False)

#: The ``type`` values accepted for an HTTP (streamable HTTP) server.
_HTTP = ("http", "streamable_http", "streamable-http")
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_BEARER = "bearer "


def errors(options: dict[str, Any], *, stdio: bool = False) -> list[dict[str, Any]]:
    """Problems with ``mcp_servers`` / ``codeyard_mcp`` in a provider's options (Codex, ACP;
    ``stdio``: the provider can take Codeyard's server as a command, ``"stdio"`` allowed)."""
    found: list[dict[str, Any]] = []

    def bad(key: str, msg: str) -> None:
        found.append({"loc": ["agent_options", key], "msg": msg})

    if stdio and options.get("codeyard_mcp") not in (*_OPT_IN, "stdio"):
        bad("codeyard_mcp", 'must be true, false or "stdio"')
    elif not stdio and options.get("codeyard_mcp") not in _OPT_IN:
        bad("codeyard_mcp", 'must be true or false ("stdio" is for ACP agents)')
    if STDIO_KEY in options:
        bad(STDIO_KEY, 'is set by Codeyard at each turn: use "codeyard_mcp" instead')
    servers = options.get("mcp_servers")
    if servers is None:
        return found
    if not isinstance(servers, dict):
        bad("mcp_servers", 'must be an object: {"name": {"type": "http", "url": "https://…"}}')
        return found
    for name, server in servers.items():
        if not _NAME.match(str(name)):
            bad("mcp_servers", f"'{name}' is not a server name (letters, digits, - and _)")
        elif not isinstance(server, dict) or server.get("type", "http") not in _HTTP:
            bad("mcp_servers", f'\'{name}\' must be an HTTP server: {{"type": "http", ...}}')
        elif not isinstance(server.get("url"), str) or not server["url"].startswith(
            ("http://", "https://")
        ):
            bad("mcp_servers", f"'{name}' needs a url starting with http:// or https://")
        elif not _string_map(server.get("headers", {})):
            bad("mcp_servers", f"'{name}' headers must be an object of strings")
    return found


def _string_map(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


def http_servers(options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The valid HTTP servers of validated options: ``{name: {"url", "headers"}}``."""
    servers = options.get("mcp_servers")
    if not isinstance(servers, dict):
        return {}
    found: dict[str, dict[str, Any]] = {}
    for name, server in servers.items():
        if not isinstance(server, dict) or server.get("type", "http") not in _HTTP:
            continue
        url, headers = server.get("url"), server.get("headers") or {}
        if isinstance(url, str) and _string_map(headers) and _NAME.match(str(name)):
            found[str(name)] = {"url": url, "headers": dict(headers)}
    return found


def _env_name(name: str) -> str:
    # Not CODEYARD_*: the sandbox drops Codeyard's own variables from an agent's environment.
    return "MCP_BEARER_TOKEN_" + re.sub(r"[^A-Z0-9]", "_", name.upper())


def codex_config(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Codex configuration overrides and environment for the options' MCP servers."""
    config: dict[str, Any] = {}
    env: dict[str, str] = {}
    for name, server in http_servers(options).items():
        key = f"mcp_servers.{name}"
        config[f"{key}.url"] = server["url"]
        # Required: the thread waits for the server before the first model call (else its
        # tools may be missing from it) and fails in clear words if it cannot start.
        config[f"{key}.required"] = True
        headers = dict(server["headers"])
        auth = headers.pop("Authorization", None)
        if auth is not None and auth.lower().startswith(_BEARER):
            variable = _env_name(name)
            env[variable] = auth[len(_BEARER) :]
            config[f"{key}.bearer_token_env_var"] = variable
        elif auth is not None:
            headers["Authorization"] = auth
        if headers:
            config[f"{key}.http_headers"] = headers
    return config, env


def stdio_servers(options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The commands of options (:data:`STDIO_KEY`): ``{name: {"command", "args", "env"}}``."""
    servers = options.get(STDIO_KEY)
    if not isinstance(servers, dict):
        return {}
    found: dict[str, dict[str, Any]] = {}
    for name, server in servers.items():
        if not isinstance(server, dict) or not isinstance(server.get("command"), str):
            continue
        args, env = server.get("args") or [], server.get("env") or {}
        if isinstance(args, list) and all(isinstance(a, str) for a in args) and _string_map(env):
            found[str(name)] = {"command": server["command"], "args": list(args), "env": dict(env)}
    return found


def acp_servers(
    servers: dict[str, dict[str, Any]],
    capabilities: Any,
    commands: dict[str, dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The ``mcpServers`` of ``session/new`` for an agent with these ``agentCapabilities``:
    the HTTP servers (from :func:`http_servers`) if the agent speaks MCP over HTTP; then the
    commands (from :func:`stdio_servers`) of every server not given over HTTP."""
    mcp = capabilities.get("mcpCapabilities") if isinstance(capabilities, dict) else None
    http = isinstance(mcp, dict) and mcp.get("http") is True
    listed: list[dict[str, Any]] = []
    if http:
        listed = [
            {
                "type": "http",
                "name": name,
                "url": server["url"],
                "headers": [{"name": k, "value": v} for k, v in server["headers"].items()],
            }
            for name, server in servers.items()
        ]
    given = {s["name"] for s in listed}
    listed += [
        {
            "name": name,
            "command": command["command"],
            "args": list(command["args"]),
            "env": [{"name": k, "value": v} for k, v in command["env"].items()],
        }
        for name, command in (commands or {}).items()
        if name not in given
    ]
    return listed
