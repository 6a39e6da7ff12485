"""Claude Code's stream-json output as typed messages, with an ``Unknown`` for anything else.

``parse`` never raises: a line this module does not understand (a new message type, a field of
the wrong shape) becomes :class:`Unknown` carrying the raw object, so a newer CLI degrades to
"not shown" rather than failing the run. Field names follow the CLI's output (research §3.3).

The classes are plain slotted dataclasses, not frozen ones: a frozen dataclass sets each field
through ``object.__setattr__``, which made constructing them a third of ``parse``'s time
(``bench/claude_parse.py``). Treat them as read-only all the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AssistantMessage",
    "Block",
    "ResultMessage",
    "StreamEvent",
    "StreamMessage",
    "SystemInit",
    "SystemMessage",
    "TextBlock",
    "ThinkingBlock",
    "ToolResultBlock",
    "ToolUseBlock",
    "Unknown",
    "UnknownBlock",
    "UserMessage",
    "parse",
]


@dataclass(slots=True)
class TextBlock:
    text: str


@dataclass(slots=True)
class ThinkingBlock:
    thinking: str


@dataclass(slots=True)
class ToolUseBlock:
    id: str
    name: str
    input: dict[str, Any]


@dataclass(slots=True)
class ToolResultBlock:
    tool_use_id: str
    #: A string, or a list of content blocks (``{"type": "text", "text": …}``, images…).
    content: Any
    is_error: bool


@dataclass(slots=True)
class UnknownBlock:
    raw: Any


Block = TextBlock | ThinkingBlock | ToolUseBlock | ToolResultBlock | UnknownBlock


@dataclass(slots=True)
class SystemInit:
    """``system/init``: the first line of every process, carrying the (resumable) session id."""

    session_id: str
    model: str | None
    tools: list[str]
    cli_version: str | None
    cwd: str | None
    permission_mode: str | None


@dataclass(slots=True)
class SystemMessage:
    """Any other ``system`` line (hooks, status, compaction…): kept raw."""

    subtype: str
    raw: dict[str, Any]


@dataclass(slots=True)
class AssistantMessage:
    """One content block of an assistant message (the CLI writes one line per block)."""

    message_id: str
    uuid: str | None
    model: str | None
    blocks: list[Block]
    parent_tool_use_id: str | None
    #: Set on synthetic messages the CLI writes for API failures (``"server_error"``…).
    error: str | None
    #: The model message's usage as the CLI knew it when it wrote this block (the same for
    #: every block of one message; its output count is the one of the message's start).
    usage: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class UserMessage:
    """Tool results (and echoed or synthetic user text) sent back to the model."""

    blocks: list[Block]
    parent_tool_use_id: str | None
    #: The CLI's structured tool output (Bash: ``{"stdout", "stderr", "interrupted"}``).
    tool_use_result: Any


@dataclass(slots=True)
class ResultMessage:
    """The end of one turn: outcome, usage and (cumulative per process) cost."""

    subtype: str
    is_error: bool
    result: str | None
    stop_reason: str | None
    session_id: str | None
    total_cost_usd: float | None
    usage: dict[str, Any]
    model_usage: dict[str, Any]
    #: Per-model usage and ``costUSD`` since the previous result (newer CLIs only).
    model_usage_since_last_result: dict[str, Any] | None
    num_turns: int | None
    duration_ms: int | None
    errors: list[str] = field(default_factory=list)
    terminal_reason: str | None = None
    permission_denials: list[Any] = field(default_factory=list)


@dataclass(slots=True)
class StreamEvent:
    """A raw Anthropic stream event (only with ``--include-partial-messages``)."""

    event: dict[str, Any]
    parent_tool_use_id: str | None


@dataclass(slots=True)
class Unknown:
    raw: Any


StreamMessage = (
    SystemInit
    | SystemMessage
    | AssistantMessage
    | UserMessage
    | ResultMessage
    | StreamEvent
    | Unknown
)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _num(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_block(raw: Any) -> Block:
    if not isinstance(raw, dict):
        return UnknownBlock(raw)
    kind = raw.get("type")
    if kind == "text" and isinstance(raw.get("text"), str):
        return TextBlock(raw["text"])
    if kind == "thinking" and isinstance(raw.get("thinking"), str):
        return ThinkingBlock(raw["thinking"])
    if kind == "tool_use" and isinstance(raw.get("id"), str) and isinstance(raw.get("name"), str):
        return ToolUseBlock(raw["id"], raw["name"], _dict(raw.get("input")))
    if kind == "tool_result" and isinstance(raw.get("tool_use_id"), str):
        return ToolResultBlock(raw["tool_use_id"], raw.get("content"), raw.get("is_error") is True)
    return UnknownBlock(raw)


def _content(raw: Any) -> list[Block]:
    if isinstance(raw, str):
        return [TextBlock(raw)]
    if isinstance(raw, list):
        return [parse_block(b) for b in raw]
    return []


def _parse_system(raw: dict[str, Any]) -> StreamMessage:
    subtype = _str(raw.get("subtype")) or ""
    if subtype == "init" and isinstance(raw.get("session_id"), str):
        tools = raw.get("tools")
        return SystemInit(
            session_id=raw["session_id"],
            model=_str(raw.get("model")),
            tools=[t for t in tools if isinstance(t, str)] if isinstance(tools, list) else [],
            cli_version=_str(raw.get("claude_code_version")),
            cwd=_str(raw.get("cwd")),
            permission_mode=_str(raw.get("permissionMode")),
        )
    return SystemMessage(subtype, raw)


def _parse_result(raw: dict[str, Any]) -> ResultMessage:
    since = raw.get("model_usage_since_last_result")
    errors = raw.get("errors")
    denials = raw.get("permission_denials")
    return ResultMessage(
        subtype=_str(raw.get("subtype")) or "",
        is_error=raw.get("is_error") is True,
        result=_str(raw.get("result")),
        stop_reason=_str(raw.get("stop_reason")),
        session_id=_str(raw.get("session_id")),
        total_cost_usd=_num(raw.get("total_cost_usd")),
        usage=_dict(raw.get("usage")),
        model_usage=_dict(raw.get("modelUsage")),
        model_usage_since_last_result=since if isinstance(since, dict) else None,
        num_turns=_int(raw.get("num_turns")),
        duration_ms=_int(raw.get("duration_ms")),
        errors=[str(e) for e in errors] if isinstance(errors, list) else [],
        terminal_reason=_str(raw.get("terminal_reason")),
        permission_denials=denials if isinstance(denials, list) else [],
    )


def parse(raw: Any) -> StreamMessage:
    """The typed form of one stream-json line (already JSON-decoded)."""
    if not isinstance(raw, dict):
        return Unknown(raw)
    kind = raw.get("type")
    message = _dict(raw.get("message"))
    parent = _str(raw.get("parent_tool_use_id"))
    if kind == "system":
        return _parse_system(raw)
    if kind == "assistant" and message:
        return AssistantMessage(
            message_id=_str(message.get("id")) or _str(raw.get("uuid")) or "",
            uuid=_str(raw.get("uuid")),
            model=_str(message.get("model")),
            blocks=_content(message.get("content")),
            parent_tool_use_id=parent,
            error=_str(raw.get("error")),
            usage=_dict(message.get("usage")),
        )
    if kind == "user" and message:
        return UserMessage(_content(message.get("content")), parent, raw.get("tool_use_result"))
    if kind == "result":
        return _parse_result(raw)
    if kind == "stream_event" and isinstance(raw.get("event"), dict):
        return StreamEvent(raw["event"], parent)
    return Unknown(raw)
