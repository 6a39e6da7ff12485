"""The reply script of the fake model server: a queue of canned model replies.

One reply answers one model request, whatever API the request came through, so a single script
drives Claude Code (Anthropic Messages), Codex (OpenAI Responses), Copilot/OpenCode (Chat
Completions) or Gemini CLI alike. A script file is JSON::

    {"replies": [
        {"text": "Writing it.", "tool_calls": [{"name": "Write",
                                                "input": {"file_path": "{cwd}/a.txt",
                                                          "content": "hi"}}]},
        {"delay": 30, "text": "slow answer"},
        {"http_error": {"status": 529, "body": {"error": {"message": "Overloaded"}}}},
        {"thinking": "hmm", "text": "Done.", "usage": {"input_tokens": 900}}
     ],
     "default": {"text": "The script has no more replies."}}

(a bare list is taken as ``replies``). ``{cwd}`` in tool inputs is replaced with the agent's
working directory as the request states it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_TEXT",
    "HttpError",
    "Reply",
    "ScriptError",
    "ToolCall",
    "Usage",
    "load_script",
    "parse_replies",
    "parse_reply",
]

DEFAULT_TEXT = "The fake model has no scripted reply left; this is its default answer."
REPLY_KEYS = frozenset(
    {"text", "thinking", "tool_call", "tool_calls", "delay", "http_error", "usage", "stop_reason"}
)


class ScriptError(ValueError):
    """A reply script that cannot be used; the message says which reply and why."""


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts reported for one reply (each API maps them to its own field names)."""

    input_tokens: int = 100
    output_tokens: int = 12
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    input: dict[str, Any]
    #: Call id; one is generated per API convention (``toolu_…``, ``call_…``) when absent.
    id: str | None = None
    #: OpenAI Responses: the namespace tool ``name`` belongs to (Codex declares each MCP
    #: server's tools as a ``namespace`` tool, e.g. ``mcp__codeyard``).
    namespace: str | None = None


@dataclass(frozen=True, slots=True)
class HttpError:
    status: int
    #: JSON body; a provider-shaped error body is generated when absent.
    body: Any = None
    #: Extra response headers (``retry-after-ms: 0`` makes retrying clients retry at once).
    headers: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class Reply:
    """One model answer: thinking, text and tool calls, or an HTTP error; after ``delay`` s."""

    text: str | None = None
    thinking: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    delay: float = 0.0
    http_error: HttpError | None = None
    usage: Usage = field(default_factory=Usage)
    #: Overrides the stop reason (default: ``tool_use`` with tool calls, else ``end_turn``).
    stop_reason: str | None = None

    @property
    def wants_tools(self) -> bool:
        return bool(self.tool_calls)


def _fail(where: str, msg: str) -> ScriptError:
    return ScriptError(f"{where}: {msg}")


def _tool_call(raw: Any, where: str) -> ToolCall:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise _fail(where, "a tool call needs a string 'name' and an object 'input'")
    tool_input = raw.get("input", {})
    if not isinstance(tool_input, dict):
        raise _fail(where, "a tool call's 'input' must be an object")
    call_id = raw.get("id")
    if call_id is not None and not isinstance(call_id, str):
        raise _fail(where, "a tool call's 'id' must be a string")
    return ToolCall(raw["name"], tool_input, call_id)


def _usage(raw: Any, where: str) -> Usage:
    if not isinstance(raw, dict):
        raise _fail(where, "'usage' must be an object")
    known = {f for f in Usage.__dataclass_fields__}
    unknown = set(raw) - known
    if unknown:
        raise _fail(where, f"unknown usage fields {sorted(unknown)}; known: {sorted(known)}")
    if not all(isinstance(v, int) and v >= 0 for v in raw.values()):
        raise _fail(where, "usage counts must be non-negative integers")
    return Usage(**raw)


def _http_error(raw: Any, where: str) -> HttpError:
    if isinstance(raw, int):
        raw = {"status": raw}
    if not isinstance(raw, dict) or not isinstance(raw.get("status"), int):
        raise _fail(where, "'http_error' needs an integer 'status' (and an optional 'body')")
    if not 400 <= raw["status"] <= 599:
        raise _fail(where, "'http_error.status' must be between 400 and 599")
    headers = raw.get("headers")
    if headers is not None and not (
        isinstance(headers, dict) and all(isinstance(v, str) for v in headers.values())
    ):
        raise _fail(where, "'http_error.headers' must be an object of strings")
    return HttpError(raw["status"], raw.get("body"), headers)


def parse_reply(raw: Any, where: str = "reply") -> Reply:
    """A :class:`Reply` from its JSON form (a bare string is a text reply)."""
    if isinstance(raw, str):
        return Reply(text=raw)
    if not isinstance(raw, dict):
        raise _fail(where, "a reply must be an object or a string")
    unknown = set(raw) - REPLY_KEYS
    if unknown:
        raise _fail(where, f"unknown fields {sorted(unknown)}; known: {sorted(REPLY_KEYS)}")
    for key in ("text", "thinking", "stop_reason"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            raise _fail(where, f"'{key}' must be a string")
    delay = raw.get("delay", 0)
    if not isinstance(delay, int | float) or isinstance(delay, bool) or delay < 0:
        raise _fail(where, "'delay' must be a non-negative number of seconds")
    calls_raw = list(raw.get("tool_calls") or [])
    if "tool_call" in raw:
        calls_raw.insert(0, raw["tool_call"])
    calls = tuple(_tool_call(c, f"{where}.tool_calls[{i}]") for i, c in enumerate(calls_raw))
    error = _http_error(raw["http_error"], where) if "http_error" in raw else None
    if error is not None and (calls or raw.get("text") or raw.get("thinking")):
        raise _fail(where, "an 'http_error' reply cannot also have text, thinking or tool calls")
    return Reply(
        text=raw.get("text"),
        thinking=raw.get("thinking"),
        tool_calls=calls,
        delay=float(delay),
        http_error=error,
        usage=_usage(raw["usage"], where) if "usage" in raw else Usage(),
        stop_reason=raw.get("stop_reason"),
    )


def parse_replies(raw: Any) -> tuple[list[Reply], Reply | None]:
    """(replies, default reply or None) from a script's JSON value."""
    if isinstance(raw, list):
        raw = {"replies": raw}
    if not isinstance(raw, dict):
        raise ScriptError("a script must be a list of replies or an object with 'replies'")
    unknown = set(raw) - {"replies", "default"}
    if unknown:
        raise ScriptError(f"unknown script fields {sorted(unknown)}; known: replies, default")
    replies_raw = raw.get("replies", [])
    if not isinstance(replies_raw, list):
        raise ScriptError("'replies' must be a list")
    replies = [parse_reply(r, f"replies[{i}]") for i, r in enumerate(replies_raw)]
    default = parse_reply(raw["default"], "default") if "default" in raw else None
    return replies, default


def load_script(path: Path) -> tuple[list[Reply], Reply | None]:
    """Read and validate a script file; raises :class:`ScriptError` with the reason."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScriptError(f"cannot read the script {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ScriptError(f"the script {path} is not valid JSON: {exc}") from None
    return parse_replies(raw)
