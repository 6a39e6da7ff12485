"""The ``codex app-server`` wire format (JSON-RPC 2.0 over stdio, JSON lines), typed.

Only what Codeyard reads is typed; every other message parses to :class:`Unknown` (or an item to
:class:`OtherItem`), so a newer Codex adds noise to the raw log, never a crash. Shapes are the
ones ``codex app-server generate-json-schema`` (0.163) describes and the recorded transcripts in
``tests/unit/data/codex_*.jsonl`` show.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AgentMessageDelta",
    "ApprovalRequest",
    "CommandItem",
    "ErrorNotice",
    "FileChangeItem",
    "Item",
    "ItemCompleted",
    "ItemStarted",
    "McpApproval",
    "MessageItem",
    "OtherItem",
    "ReasoningItem",
    "Response",
    "ServerMessage",
    "ServerRequest",
    "TokenUsage",
    "ToolItem",
    "TurnCompleted",
    "Unknown",
    "UserMessageItem",
    "parse",
]

COMMAND_APPROVAL = "item/commandExecution/requestApproval"
FILE_APPROVAL = "item/fileChange/requestApproval"
#: Codex asks whether to call an MCP server's tool as an MCP elicitation (``_meta``
#: ``codex_approval_kind: mcp_tool_call``, observed with 0.163), not as an approval request.
MCP_ELICITATION = "mcpServer/elicitation/request"
_MCP_TOOL_IN_MESSAGE = re.compile(r'run tool "([^"]+)"')


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


# --- items ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CommandItem:
    id: str
    command: str
    cwd: str | None
    status: str
    output: str | None
    exit_code: int | None
    duration_ms: int | None


@dataclass(frozen=True, slots=True)
class FileChangeItem:
    id: str
    #: ``(path, kind)`` with kind ``add``, ``delete`` or ``update``.
    changes: tuple[tuple[str, str], ...]
    status: str


@dataclass(frozen=True, slots=True)
class ToolItem:
    """An MCP tool call, a web search or a dynamic tool call: shown, never decided by us."""

    id: str
    tool: str
    kind: str
    input: dict[str, Any]
    status: str
    output: str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class MessageItem:
    id: str
    text: str
    #: ``commentary`` (more tool calls or text may follow), ``partial_answer``,
    #: ``final_answer``, or None: not every model says (Codex's ``MessagePhase``).
    phase: str | None = None


@dataclass(frozen=True, slots=True)
class ReasoningItem:
    id: str
    text: str


@dataclass(frozen=True, slots=True)
class UserMessageItem:
    """Input the turn took in: its prompt, or a ``turn/steer`` (``client_id`` as we sent it)."""

    id: str
    client_id: str | None


@dataclass(frozen=True, slots=True)
class OtherItem:
    id: str
    type: str


Item = (
    CommandItem
    | FileChangeItem
    | ToolItem
    | MessageItem
    | ReasoningItem
    | UserMessageItem
    | OtherItem
)


def _change_kind(kind: Any) -> str:
    if isinstance(kind, dict):
        kind = kind.get("type")
    return kind if isinstance(kind, str) else "update"


def _texts(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(t for t in (_texts(v) for v in value) if t)
    if isinstance(value, dict):
        return _texts(value.get("text"))
    return ""


def parse_item(raw: dict[str, Any]) -> Item:
    ident = str(raw.get("id") or "")
    kind = str(raw.get("type") or "")
    status = str(raw.get("status") or "")
    if kind == "commandExecution":
        return CommandItem(
            ident,
            str(raw.get("command") or ""),
            _str(raw.get("cwd")),
            status,
            _str(raw.get("aggregatedOutput")),
            _int(raw.get("exitCode")),
            _int(raw.get("durationMs")),
        )
    if kind == "fileChange":
        changes = tuple(
            (str(c.get("path") or ""), _change_kind(c.get("kind")))
            for c in raw.get("changes") or []
            if isinstance(c, dict)
        )
        return FileChangeItem(ident, changes, status)
    if kind == "mcpToolCall":
        server, tool = str(raw.get("server") or ""), str(raw.get("tool") or "")
        error = _dict(raw.get("error")).get("message")
        return ToolItem(
            ident,
            f"mcp__{server}__{tool}",
            "mcp",
            _dict(raw.get("arguments")),
            status,
            _texts(_dict(raw.get("result")).get("content")) or None,
            _str(error),
        )
    if kind == "webSearch":
        query = str(raw.get("query") or "")
        return ToolItem(ident, "web_search", "fetch", {"query": query}, status, None, None)
    if kind == "agentMessage":
        return MessageItem(ident, str(raw.get("text") or ""), _str(raw.get("phase")))
    if kind == "reasoning":
        return ReasoningItem(ident, _texts(raw.get("summary")) or _texts(raw.get("content")))
    if kind == "userMessage":
        return UserMessageItem(ident, _str(raw.get("clientId")))
    return OtherItem(ident, kind)


# --- messages ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Response:
    """The answer to one of our requests."""

    id: int | str
    result: dict[str, Any] | None
    error: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class ServerRequest:
    """A request the app-server sends us (approvals, questions); it waits for our answer."""

    id: int | str
    method: str
    params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """``item/commandExecution/requestApproval`` or ``item/fileChange/requestApproval``."""

    id: int | str
    method: str
    item_id: str
    turn_id: str | None
    #: For commands: the command line and directory as Codex will run them.
    command: str | None = None
    cwd: str | None = None
    reason: str | None = None

    @property
    def is_command(self) -> bool:
        return self.method == COMMAND_APPROVAL


@dataclass(frozen=True, slots=True)
class McpApproval:
    """``mcpServer/elicitation/request`` asking to call an MCP tool: answered with an MCP
    elicitation result (``action: accept | decline``)."""

    id: int | str
    server: str
    #: The tool's name on its server, when Codex's message names it.
    tool: str | None
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ItemStarted:
    item: Item
    turn_id: str | None


@dataclass(frozen=True, slots=True)
class ItemCompleted:
    item: Item
    turn_id: str | None


@dataclass(frozen=True, slots=True)
class AgentMessageDelta:
    item_id: str
    delta: str


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """``thread/tokenUsage/updated``: the thread's cumulative counts (``total``)."""

    turn_id: str | None
    input_tokens: int
    cached_input_tokens: int
    cache_write_input_tokens: int
    output_tokens: int


@dataclass(frozen=True, slots=True)
class ErrorNotice:
    """``error``: a model API or runtime error; ``will_retry`` when Codex tries again."""

    message: str
    info: str | None
    will_retry: bool
    turn_id: str | None


@dataclass(frozen=True, slots=True)
class TurnCompleted:
    turn_id: str
    status: str
    error: str | None
    error_info: str | None


@dataclass(frozen=True, slots=True)
class Unknown:
    method: str | None
    params: dict[str, Any] = field(default_factory=dict)


ServerMessage = (
    Response
    | ApprovalRequest
    | McpApproval
    | ServerRequest
    | ItemStarted
    | ItemCompleted
    | AgentMessageDelta
    | TokenUsage
    | ErrorNotice
    | TurnCompleted
    | Unknown
)


def _error_info(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and value:
        return str(next(iter(value)))
    return None


def _token_usage(params: dict[str, Any]) -> TokenUsage:
    total = _dict(_dict(params.get("tokenUsage")).get("total"))
    return TokenUsage(
        _str(params.get("turnId")),
        _int(total.get("inputTokens")) or 0,
        _int(total.get("cachedInputTokens")) or 0,
        _int(total.get("cacheWriteInputTokens")) or 0,
        _int(total.get("outputTokens")) or 0,
    )


def _notification(method: str, params: dict[str, Any]) -> ServerMessage:
    turn_id = _str(params.get("turnId"))
    if method in ("item/started", "item/completed"):
        item = parse_item(_dict(params.get("item")))
        return (
            ItemStarted(item, turn_id) if method == "item/started" else ItemCompleted(item, turn_id)
        )
    if method == "item/agentMessage/delta":
        return AgentMessageDelta(str(params.get("itemId") or ""), str(params.get("delta") or ""))
    if method == "thread/tokenUsage/updated":
        return _token_usage(params)
    if method == "error":
        error = _dict(params.get("error"))
        return ErrorNotice(
            str(error.get("message") or "unknown error"),
            _error_info(error.get("codexErrorInfo")),
            bool(params.get("willRetry")),
            turn_id,
        )
    if method == "turn/completed":
        turn = _dict(params.get("turn"))
        error = _dict(turn.get("error"))
        return TurnCompleted(
            str(turn.get("id") or ""),
            str(turn.get("status") or ""),
            _str(error.get("message")),
            _error_info(error.get("codexErrorInfo")),
        )
    return Unknown(method, params)


def parse(raw: Any) -> ServerMessage:
    """One decoded JSON line from the app-server as a typed message."""
    if not isinstance(raw, dict):
        return Unknown(None)
    method = raw.get("method")
    params = _dict(raw.get("params"))
    raw_id = raw.get("id")
    has_id = isinstance(raw_id, int | str) and not isinstance(raw_id, bool)
    ident: int | str = raw_id if isinstance(raw_id, int | str) else ""
    if not isinstance(method, str):
        if has_id:
            error = raw.get("error")
            return Response(ident, _dict(raw.get("result")), error if error else None)
        return Unknown(None, raw)
    if has_id:
        if method in (COMMAND_APPROVAL, FILE_APPROVAL):
            return ApprovalRequest(
                ident,
                method,
                str(params.get("itemId") or ""),
                _str(params.get("turnId")),
                _str(params.get("command")),
                _str(params.get("cwd")),
                _str(params.get("reason")),
            )
        meta = _dict(params.get("_meta"))
        if method == MCP_ELICITATION and meta.get("codex_approval_kind") == "mcp_tool_call":
            named = _MCP_TOOL_IN_MESSAGE.search(str(params.get("message") or ""))
            return McpApproval(
                ident,
                str(params.get("serverName") or ""),
                named.group(1) if named else None,
                _dict(meta.get("tool_params")),
            )
        return ServerRequest(ident, method, params)
    return _notification(method, params)
