"""ACP messages the client side reads, typed, each with a catch-all. Pure: no I/O.

Only the parts Codeyard acts on are modelled: ``session/update`` notifications, the
``session/request_permission`` request and the ``session/prompt`` result. Anything else parses
to :class:`Unknown` and is kept (raw) in the run's log. Agents differ in what they fill in
(Gemini CLI sends no ``rawInput``; OpenCode first announces a call with its tool name as title),
so every field is optional and parsing never raises.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Chunk",
    "PermissionOption",
    "PermissionRequest",
    "Plan",
    "PromptResult",
    "ToolCallInfo",
    "Unknown",
    "Update",
    "UsageUpdate",
    "error_text",
    "parse_permission",
    "parse_prompt_result",
    "parse_update",
]


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of the agent's reply (``agent_message_chunk``) or of its thinking."""

    thought: bool
    text: str
    message_id: str | None = None
    #: Tokens of one model call, when the agent reports them on a chunk's ``_meta.usage``
    #: (Qwen Code, whose ``session/prompt`` answer carries none).
    usage: dict[str, int] | None = None


@dataclass(frozen=True, slots=True)
class ToolCallInfo:
    """``tool_call`` (``new``) or ``tool_call_update``; unset fields are ``None``."""

    call_id: str
    new: bool
    title: str | None = None
    kind: str | None = None
    status: str | None = None
    raw_input: dict[str, Any] | None = None
    raw_output: Any = None
    #: Text of the ``content`` items (``None`` when the update carries no ``content``).
    content: str | None = None


@dataclass(frozen=True, slots=True)
class Plan:
    entries: list[dict[str, str]]


@dataclass(frozen=True, slots=True)
class UsageUpdate:
    """``usage_update``: context window use (``used`` of ``size`` tokens), not billing."""

    used: int | None
    size: int | None


@dataclass(frozen=True, slots=True)
class Unknown:
    kind: str
    raw: dict[str, Any]


Update = Chunk | ToolCallInfo | Plan | UsageUpdate | Unknown


@dataclass(frozen=True, slots=True)
class PermissionOption:
    option_id: str
    kind: str
    name: str


@dataclass(frozen=True, slots=True)
class PermissionRequest:
    tool_call: ToolCallInfo
    options: list[PermissionOption]


@dataclass(frozen=True, slots=True)
class PromptResult:
    stop_reason: str
    #: Tokens of the turn when the agent reports them: input, output, cache read, cache write.
    usage: dict[str, int] | None = None
    #: The model the tokens were spent on, when the agent says (Gemini CLI).
    model: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _content_text(content: Any) -> str | None:
    """The text of ACP tool-call content: ``content`` blocks, diffs and terminals."""
    if not isinstance(content, list):
        return None
    parts: list[str] = []
    for item in content:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "content":
            block = item.get("content")
            if isinstance(block, dict) and isinstance(block.get("text"), str):
                parts.append(block["text"])
        elif item.get("type") == "diff" and isinstance(item.get("path"), str):
            parts.append(f"diff {item['path']}")
    return "\n".join(parts)


def _tool_call(raw: dict[str, Any], new: bool) -> ToolCallInfo:
    raw_input = raw.get("rawInput")
    return ToolCallInfo(
        call_id=str(raw.get("toolCallId") or ""),
        new=new,
        title=_str(raw.get("title")),
        kind=_str(raw.get("kind")),
        status=_str(raw.get("status")),
        raw_input=raw_input if isinstance(raw_input, dict) else None,
        raw_output=raw.get("rawOutput"),
        content=_content_text(raw.get("content")),
    )


def _plan(raw: dict[str, Any]) -> Plan:
    entries = [
        {"content": str(e.get("content", "")), "status": str(e.get("status", "pending"))}
        for e in raw.get("entries") or []
        if isinstance(e, dict)
    ]
    return Plan(entries)


def parse_update(params: Any) -> Update:
    """One ``session/update`` notification's ``params``."""
    update = params.get("update") if isinstance(params, dict) else None
    if not isinstance(update, dict):
        return Unknown("malformed", params if isinstance(params, dict) else {})
    kind = str(update.get("sessionUpdate") or "")
    if kind in ("agent_message_chunk", "agent_thought_chunk"):
        content = update.get("content")
        text = content.get("text") if isinstance(content, dict) else None
        if isinstance(text, str):
            meta = update.get("_meta")
            return Chunk(
                kind == "agent_thought_chunk",
                text,
                _str(update.get("messageId")),
                _usage(meta) if isinstance(meta, dict) else None,
            )
    elif kind in ("tool_call", "tool_call_update") and update.get("toolCallId"):
        return _tool_call(update, new=kind == "tool_call")
    elif kind == "plan":
        return _plan(update)
    elif kind == "usage_update":
        return UsageUpdate(_int(update.get("used")), _int(update.get("size")))
    return Unknown(kind, update)


def parse_permission(params: Any) -> PermissionRequest | None:
    """A ``session/request_permission`` request's ``params`` (None when unusable)."""
    if not isinstance(params, dict) or not isinstance(params.get("toolCall"), dict):
        return None
    options = [
        PermissionOption(str(o.get("optionId")), str(o.get("kind")), str(o.get("name", "")))
        for o in params.get("options") or []
        if isinstance(o, dict) and o.get("optionId") is not None
    ]
    return PermissionRequest(_tool_call(params["toolCall"], new=False), options)


def _usage(result: dict[str, Any]) -> dict[str, int] | None:
    usage = result.get("usage")
    if isinstance(usage, dict):
        return {
            "input_tokens": _int(usage.get("inputTokens")) or 0,
            "output_tokens": _int(usage.get("outputTokens")) or 0,
            "cache_read_tokens": _int(usage.get("cachedReadTokens")) or 0,
            "cache_write_tokens": _int(usage.get("cachedWriteTokens")) or 0,
        }
    # Gemini CLI: ``_meta.quota.token_count``.
    meta = result.get("_meta")
    quota = meta.get("quota") if isinstance(meta, dict) else None
    count = quota.get("token_count") if isinstance(quota, dict) else None
    if isinstance(count, dict):
        return {
            "input_tokens": _int(count.get("input_tokens")) or 0,
            "output_tokens": _int(count.get("output_tokens")) or 0,
            "cache_read_tokens": _int(count.get("cached_tokens")) or 0,
            "cache_write_tokens": 0,
        }
    return None


def _model(result: dict[str, Any]) -> str | None:
    """The one model of Gemini CLI's ``_meta.quota.model_usage`` (None for several or none)."""
    meta = result.get("_meta")
    quota = meta.get("quota") if isinstance(meta, dict) else None
    per_model = quota.get("model_usage") if isinstance(quota, dict) else None
    if isinstance(per_model, list) and len(per_model) == 1 and isinstance(per_model[0], dict):
        return _str(per_model[0].get("model"))
    return None


def parse_prompt_result(result: Any) -> PromptResult:
    raw = result if isinstance(result, dict) else {}
    stop = str(raw.get("stopReason") or "end_turn")
    return PromptResult(stop, _usage(raw), _model(raw), raw)


def error_text(message: str) -> str:
    """The readable part of a JSON-RPC error message: agents often pass the model API's JSON
    error body through (``{"error": {"message": …}}``)."""
    try:
        body = json.loads(message)
    except ValueError:
        return message
    for _ in range(3):
        if not isinstance(body, dict):
            break
        inner = body.get("error", body.get("message"))
        if isinstance(inner, str):
            return inner
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            text: str = inner["message"]
            return error_text(text) if text.startswith("{") else text
        body = inner
    return message
