"""Claude Code hook payloads as normalized events: an optional extra event source for a Claude
Code started outside Codeyard (its hooks ``curl`` each payload to
``POST /api/runs/{id}/hook``), like CodePiper's ``/hooks/claude`` and Abbado's run hook.

Pure: ``normalize(payload)`` returns the events for one hook call (empty for hooks that carry
nothing the event vocabulary has a place for). Payload fields are Claude Code's own:
``hook_event_name``, ``session_id``, ``tool_name``, ``tool_input``, ``tool_use_id``,
``tool_response``, ``prompt``, ``message``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from codeyard.agents.claude.normalize import PROVIDER, tool_kind, tool_title
from codeyard.domain.events import AgentSession, NewEvent, ToolCall, UserMessage, tool_result

#: The hooks this module turns into events; others are accepted and ignored.
HANDLED = ("SessionStart", "UserPromptSubmit", "PreToolUse", "PostToolUse")


def _call_id(payload: dict[str, Any]) -> str:
    given = payload.get("tool_use_id")
    if isinstance(given, str) and given:
        return given
    # Older Claude Code versions send no id: tie Pre and Post of one call by their input.
    raw = json.dumps([payload.get("tool_name"), payload.get("tool_input")], sort_keys=True)
    return "hook_" + hashlib.sha256(raw.encode()).hexdigest()[:16]


def _output(response: Any) -> tuple[bool, str]:
    if isinstance(response, dict):
        ok = not (response.get("is_error") or response.get("error") or response.get("interrupted"))
        text = response.get("stdout") or response.get("output") or response.get("content")
        if text is None:
            text = json.dumps(response, default=str)
        err = response.get("stderr") or response.get("error") or ""
        return ok, f"{text}{err and chr(10) + str(err)}"
    return True, "" if response is None else str(response)


def normalize(payload: dict[str, Any]) -> list[NewEvent]:
    name = payload.get("hook_event_name")
    tool = str(payload.get("tool_name") or "")
    tool_input = payload.get("tool_input") if isinstance(payload.get("tool_input"), dict) else {}
    if name == "SessionStart" and isinstance(payload.get("session_id"), str):
        return [
            AgentSession(
                session_id=payload["session_id"],
                provider=PROVIDER,
                cli_version=None,
                model=payload.get("model") if isinstance(payload.get("model"), str) else None,
                tools=[],
            )
        ]
    if name == "UserPromptSubmit" and isinstance(payload.get("prompt"), str):
        return [UserMessage(text=payload["prompt"], author="hook")]
    if name == "PreToolUse" and tool:
        return [
            ToolCall(
                call_id=_call_id(payload),
                tool=tool,
                kind=tool_kind(tool),
                title=tool_title(tool, tool_input or {}),
                input=tool_input or {},
            )
        ]
    if name == "PostToolUse" and tool:
        ok, text = _output(payload.get("tool_response"))
        return [tool_result(_call_id(payload), ok=ok, output=text)]
    return []
