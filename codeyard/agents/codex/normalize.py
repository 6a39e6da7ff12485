"""Codex app-server messages → Codeyard events (API.md, "Events"). Pure: no I/O.

``normalize(message, state)`` maps one typed message to the items an adapter yields; what it
must remember between messages (the thread, the tool calls in flight, the thread's token totals,
the reasons of Codeyard's denials) lives in :class:`NormalizeState`, so a recorded transcript
replays through it in unit tests.

Usage: ``thread/tokenUsage/updated`` carries the thread's cumulative totals after each model call;
each update becomes one ``usage`` event with the difference from the previous totals (persisted
with the run, so a resumed thread does not count its history twice). Codex does not price
tokens: ``cost_usd`` is ``None`` and the event names the ``model`` for whoever prices it. Codex's
input count includes cached tokens; the event's ``input_tokens`` does not (Codeyard's counts are
disjoint).
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from typing import Any

from codeyard.agents.base import ModelRetrying, SessionUpdate, TurnEnd
from codeyard.agents.codex.protocol import (
    AgentMessageDelta,
    ApprovalRequest,
    CommandItem,
    ErrorNotice,
    FileChangeItem,
    Item,
    ItemCompleted,
    ItemStarted,
    McpApproval,
    MessageItem,
    ReasoningItem,
    ServerMessage,
    TokenUsage,
    ToolItem,
    TurnCompleted,
)
from codeyard.domain.events import (
    OUTPUT_LIMIT,
    AgentDelta,
    AgentMessage,
    AgentSession,
    AgentThinking,
    NewEvent,
    ToolCall,
    ToolResult,
    Usage,
    tool_result,
)
from codeyard.domain.tools import ToolKind, ToolRequest

__all__ = [
    "OUTPUT_LIMIT",
    "PROVIDER",
    "Failed",
    "NormalizeState",
    "NormalizedItem",
    "concluding",
    "mcp_tool_request",
    "normalize",
    "session_items",
    "tool_request",
    "unwrap_shell",
]

PROVIDER = "codex"
SHELL_TOOL = "shell"
PATCH_TOOL = "apply_patch"
_SHELLS = frozenset({"bash", "sh", "zsh", "dash"})
_USAGE_KEYS = ("input_tokens", "cached_input_tokens", "cache_write_input_tokens", "output_tokens")


@dataclass(frozen=True, slots=True)
class Failed:
    """The turn failed; the adapter raises ``AgentFailure(reason)`` after the items before it."""

    reason: str


NormalizedItem = NewEvent | SessionUpdate | TurnEnd | Failed


@dataclass(slots=True)
class NormalizeState:
    """What normalizing needs to remember across the messages of one turn."""

    thread_id: str | None = None
    model: str | None = None
    #: The turn this process started; notifications of other turns are ignored.
    turn_id: str | None = None
    #: The thread's cumulative token counts as last reported (persisted across turns).
    totals: dict[str, int] = field(default_factory=dict)
    #: Set by the adapter when it interrupted the turn itself (cancel, pause).
    interrupting: bool = False
    #: Tool calls announced (``tool.call`` yielded), by item id.
    calls: dict[str, Item] = field(default_factory=dict)
    #: Why Codeyard declined a call, by item id (the text the model was told).
    denied: dict[str, str] = field(default_factory=dict)
    last_text: str | None = None
    #: The last error Codex reported that it does not retry.
    error: str | None = None

    def persisted(self) -> dict[str, Any]:
        """The part of the state saved with the run (``agent_state``) for the next turn."""
        return {"usage_totals": dict(self.totals)}

    @classmethod
    def restore(cls, session_id: str | None, saved: dict[str, Any]) -> NormalizeState:
        raw = saved.get("usage_totals")
        totals = {k: int(v) for k, v in raw.items() if isinstance(v, int)} if raw else {}
        return cls(thread_id=session_id, totals=totals if isinstance(raw, dict) else {})


def unwrap_shell(command: str) -> str:
    """The script of ``/bin/bash -lc '<script>'`` (how Codex reports commands), else as is."""
    try:
        argv = shlex.split(command)
    except ValueError:
        return command
    if len(argv) == 3 and argv[0].rsplit("/", 1)[-1] in _SHELLS and argv[1] in ("-lc", "-c"):
        return argv[2]
    return command


def _call(item: Item) -> tuple[str, ToolKind, dict[str, Any], str] | None:
    """(tool, kind, input, title) of a tool-call item; None for other items."""
    if isinstance(item, CommandItem):
        script = unwrap_shell(item.command)
        tool_input: dict[str, Any] = {"command": script}
        if item.cwd:
            tool_input["cwd"] = item.cwd
        return SHELL_TOOL, "bash", tool_input, f"$ {script}"
    if isinstance(item, FileChangeItem):
        changes = [{"path": path, "kind": kind} for path, kind in item.changes]
        kind: ToolKind = "write" if all(k == "add" for _, k in item.changes) else "edit"
        names = ", ".join(path.rsplit("/", 1)[-1] for path, _ in item.changes)
        verb = "Write" if kind == "write" else "Edit"
        return PATCH_TOOL, kind, {"changes": changes}, f"{verb} {names}".strip()
    if isinstance(item, ToolItem):
        detail = next((v for v in item.input.values() if isinstance(v, str) and v), "")
        tool_kind: ToolKind = "mcp" if item.kind == "mcp" else "fetch"
        return item.tool, tool_kind, item.input, f"{item.tool} {detail}".strip()
    return None


def _tool_call(item: Item, state: NormalizeState) -> list[NormalizedItem]:
    call = _call(item)
    if call is None or item.id in state.calls:
        return []
    state.calls[item.id] = item
    tool, kind, tool_input, title = call
    return [ToolCall(call_id=item.id, tool=tool, kind=kind, title=title, input=tool_input)]


def _result_of(item: Item, state: NormalizeState) -> ToolResult:
    status = getattr(item, "status", "")
    if status == "declined":
        why = state.denied.pop(item.id, None) or "The call was declined."
        return tool_result(item.id, ok=False, error=why)
    if isinstance(item, CommandItem):
        output = item.output or ""
        ok = status == "completed" and item.exit_code in (0, None)
        return tool_result(
            item.id,
            ok=ok,
            output=output if ok else "",
            error=None if ok else output or status,
            exit_code=item.exit_code,
            duration_ms=item.duration_ms or 0,
        )
    if isinstance(item, FileChangeItem):
        ok = status == "completed"
        summary = "\n".join(f"{kind} {path}" for path, kind in item.changes)
        error = None if ok else f"patch {status}"
        return tool_result(item.id, ok=ok, output=summary if ok else "", error=error)
    assert isinstance(item, ToolItem)
    ok = status == "completed" and item.error is None
    return tool_result(item.id, ok=ok, output=item.output or "", error=item.error)


def _completed(item: Item, state: NormalizeState) -> list[NormalizedItem]:
    if isinstance(item, MessageItem):
        state.last_text = item.text
        return [AgentMessage(message_id=item.id, text=item.text)]
    if isinstance(item, ReasoningItem):
        return [AgentThinking(text=item.text)] if item.text else []
    if _call(item) is None:
        return []
    items = _tool_call(item, state)  # a call Codex only reported when it finished
    state.calls.pop(item.id, None)
    return [*items, _result_of(item, state)]


def _usage(message: TokenUsage, state: NormalizeState) -> list[NormalizedItem]:
    now = {
        "input_tokens": message.input_tokens,
        "cached_input_tokens": message.cached_input_tokens,
        "cache_write_input_tokens": message.cache_write_input_tokens,
        "output_tokens": message.output_tokens,
    }
    before = state.totals
    restarted = any(now[k] < before.get(k, 0) for k in _USAGE_KEYS)
    delta = {k: now[k] - (0 if restarted else before.get(k, 0)) for k in _USAGE_KEYS}
    state.totals = now
    if not any(delta.values()):
        return []
    cached = delta["cached_input_tokens"] + delta["cache_write_input_tokens"]
    usage = Usage(
        # Codex (like OpenAI's API) counts cached tokens inside its input count; Codeyard's
        # four counts are disjoint.
        input_tokens=max(0, delta["input_tokens"] - cached),
        output_tokens=delta["output_tokens"],
        cache_read_tokens=delta["cached_input_tokens"],
        cache_write_tokens=delta["cache_write_input_tokens"],
        cost_usd=None,
        model=state.model,
    )
    return [usage, SessionUpdate(state.thread_id, state.persisted())]


def _api_message(text: str | None) -> str | None:
    """The ``error.message`` of a model API's JSON error body Codex passed on verbatim."""
    if not text or not text.lstrip().startswith("{"):
        return text
    try:
        body = json.loads(text)
    except ValueError:
        return text
    error = body.get("error") if isinstance(body, dict) else None
    found = error.get("message") if isinstance(error, dict) else None
    return found if isinstance(found, str) and found else text


def _turn_completed(message: TurnCompleted, state: NormalizeState) -> list[NormalizedItem]:
    if state.turn_id is not None and message.turn_id != state.turn_id:
        return []
    if message.status == "completed":
        return [TurnEnd("end_turn", state.last_text)]
    if message.status == "interrupted" or state.interrupting:
        return [TurnEnd("interrupted", state.last_text)]
    detail = _api_message(message.error or state.error) or message.status or "unknown error"
    info = f" ({message.error_info})" if message.error_info else ""
    return [Failed(f"Codex failed the turn: {detail}{info}")]


def normalize(message: ServerMessage, state: NormalizeState) -> list[NormalizedItem]:
    """The Codeyard items for one app-server message (often none)."""
    if isinstance(message, ItemStarted):
        return _tool_call(message.item, state)
    if isinstance(message, ItemCompleted):
        return _completed(message.item, state)
    if isinstance(message, AgentMessageDelta):
        if not message.delta:
            return []
        return [AgentDelta(message_id=message.item_id, text=message.delta)]
    if isinstance(message, TokenUsage):
        return _usage(message, state)
    if isinstance(message, ErrorNotice):
        if message.will_retry:  # shown, so a turn that keeps retrying says why it is slow
            return [
                ModelRetrying(message=f"Codex will retry: {message.message}", detail=message.info)
            ]
        state.error = message.message
        return []
    if isinstance(message, TurnCompleted):
        return _turn_completed(message, state)
    return []


def concluding(message: ServerMessage, state: NormalizeState) -> bool:
    """Whether ``message`` begins what may be the turn's last words (``Concluding``): an agent
    message started with no tool call in flight and not marked ``commentary`` or
    ``partial_answer``. Models that give no ``phase`` count too: a preamble of theirs before a
    tool call costs a checkpoint begun and dropped."""
    return (
        isinstance(message, ItemStarted)
        and isinstance(message.item, MessageItem)
        and message.item.phase in (None, "final_answer")
        and not state.calls
    )


def session_items(
    result: dict[str, Any], state: NormalizeState, cli_version: str | None
) -> list[NewEvent | SessionUpdate]:
    """``agent.session`` and the session update from a ``thread/start``/``thread/resume``
    result."""
    thread = result.get("thread") if isinstance(result.get("thread"), dict) else {}
    assert isinstance(thread, dict)
    thread_id = str(thread.get("id") or state.thread_id or "")
    model = result.get("model") or thread.get("model")
    state.thread_id = thread_id
    state.model = model if isinstance(model, str) else state.model
    session = AgentSession(
        session_id=thread_id,
        provider=PROVIDER,
        cli_version=thread.get("cliVersion") or cli_version,
        model=state.model,
        tools=[SHELL_TOOL, PATCH_TOOL],
    )
    return [session, SessionUpdate(thread_id, state.persisted())]


def tool_request(request: ApprovalRequest, state: NormalizeState) -> ToolRequest:
    """What Codeyard's decision function sees for an approval request."""
    known = state.calls.get(request.item_id)
    call = _call(known) if known is not None else None
    if call is not None:
        tool, kind, tool_input, _ = call
    elif request.is_command:
        tool, kind = SHELL_TOOL, "bash"
        tool_input = {"command": unwrap_shell(request.command or "")}
        if request.cwd:
            tool_input["cwd"] = request.cwd
    else:
        tool, kind, tool_input = PATCH_TOOL, "edit", {"changes": []}
    hints = {"reason": request.reason} if request.reason else {}
    return ToolRequest(request.item_id, tool, kind, tool_input, hints)


def mcp_tool_request(request: McpApproval, state: NormalizeState) -> ToolRequest:
    """What Codeyard's decision function sees when Codex asks to call an MCP tool: the call
    Codex announced just before (its ``mcpToolCall`` item; the request names no item)."""
    prefix = f"mcp__{request.server}__"
    wanted = prefix + request.tool if request.tool else None
    for ident, item in reversed(state.calls.items()):
        if not (isinstance(item, ToolItem) and item.kind == "mcp"):
            continue
        if item.tool == wanted or (wanted is None and item.tool.startswith(prefix)):
            return ToolRequest(ident, item.tool, "mcp", item.input, {})
    tool = wanted or f"mcp__{request.server}"
    return ToolRequest(f"mcp-approval-{request.id}", tool, "mcp", request.arguments, {})
