"""Tool calls as the decision function sees them, and its answer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

ToolKind = Literal["read", "edit", "write", "bash", "search", "fetch", "mcp", "task", "other"]


@dataclass(frozen=True, slots=True)
class ToolRequest:
    """A tool call an agent wants to make, before it runs."""

    call_id: str
    tool: str
    kind: ToolKind
    input: dict[str, Any]
    #: Provider-specific hints for the decision (the script's ``"deny": true``).
    hints: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decision:
    allow: bool
    reason: str | None = None
    rule: str | None = None

    @property
    def label(self) -> str:
        return "allow" if self.allow else "deny"
