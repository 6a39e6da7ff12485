"""How a provider asks for one ACP turn: kept apart from ``turn.py`` so that registering the
providers does not import the ACP SDK (about a second at every server start)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Launch"]


@dataclass(frozen=True, slots=True)
class Launch:
    """How to start the agent for one turn (built by the provider)."""

    provider: str
    #: The agent's name in messages ("Gemini CLI").
    label: str
    argv: list[str]
    env: dict[str, str]
    cli_version: str | None = None
    #: ``authenticate`` method to call after ``initialize`` (Gemini CLI with an API key).
    auth_method: str | None = None
    #: Folders made for this turn (generated config), removed when it ends.
    scratch: list[Path] = field(default_factory=list)
    #: How the agent's text starts when it reports a model failure as a message.
    error_marker: str | None = None
    #: A model to choose with ``session/set_model`` once the session is open (Claude Code's
    #: adapter takes no model on its command line and maps its settings to aliases).
    set_model: str | None = None
    #: The agent exits when its input ends; if not, it is sent SIGINT at once at a turn's end.
    exits_on_eof: bool = True
    #: HTTP MCP servers to give the session (``agents.mcp_servers.http_servers``): a profile's
    #: own and Codeyard's, when the profile opts in (``codeyard_mcp``).
    mcp_servers: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: MCP servers as commands (``agents.mcp_servers.stdio_servers``): Codeyard's own, for an
    #: agent that does not speak MCP over HTTP or a profile that asks for stdio.
    mcp_commands: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def mcp_names(self) -> list[str]:
        """Every MCP server the session may get, over HTTP or as a command."""
        return list(dict.fromkeys([*self.mcp_servers, *self.mcp_commands]))
