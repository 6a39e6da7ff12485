"""Approval states and the identity of a tool call across a restart (pure; no I/O)."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from codeyard.domain.errors import Conflict
from codeyard.domain.tools import ToolRequest

PENDING = "pending"
#: The only moves an approval makes: it is answered or it expires, once.
TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING: frozenset({"approved", "rejected", "expired"}),
}


def check_transition(approval_id: str, current: str, to: str) -> None:
    """Refuse any move but ``pending → approved | rejected | expired`` (409, naming why)."""
    if to not in TRANSITIONS.get(current, frozenset()):
        raise Conflict(f"Approval {approval_id} is already {current}.", current_status=current)


def _normalized(value: Any) -> Any:
    """Strings stripped of surrounding whitespace, mappings by key: what makes two asks for
    the same call compare equal although an agent re-serialized its input."""
    if isinstance(value, dict):
        return {str(k): _normalized(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [_normalized(v) for v in value]
    if isinstance(value, str):
        return value.strip()
    return value


def fingerprint(tool: str, tool_input: dict[str, Any]) -> str:
    """The identity of a tool call (tool + normalized input), without its call id: a resumed
    agent asking for the same call again is bound to the approval it already has."""
    text = json.dumps([tool, _normalized(tool_input)], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def remembered_rule(request: ToolRequest) -> dict[str, Any]:
    """The narrowest allow rule that covers this exact call next time."""
    command = request.input.get("command") or request.input.get("cmd")
    if command:
        return {
            "tool": request.tool,
            "command": f"^{re.escape(str(command))}$",
            "action": "allow",
            "reason": "remembered approval",
        }
    path = request.input.get("path") or request.input.get("file_path")
    rule: dict[str, Any] = {
        "tool": request.tool,
        "action": "allow",
        "reason": "remembered approval",
    }
    if path:
        rule["path"] = str(path)
    return rule
