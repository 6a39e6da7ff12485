"""What a Claude Code turn runs with, resolved from the run's options (no SDK import here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class TurnSettings:
    """What the provider resolved from the run's options (validated before the run started)."""

    cli: Path
    env: dict[str, str]
    permission_mode: str | None
    instructions: str | None
    allowed_tools: list[str]
    disallowed_tools: list[str]
    max_turns: int | None
    deny_tools: frozenset[str]
    #: MCP servers Claude Code may use (e.g. Codeyard's own, offered per profile).
    mcp_servers: dict[str, Any] = field(default_factory=dict)
