"""ACP session updates → Codeyard events (API.md, "Events"). Pure: no I/O.

One normalizer for every ACP agent. Its memory between messages (the message being streamed,
tool calls by id) lives in an explicit :class:`NormalizeState`, so a recorded transcript replays
through it in unit tests.

- Message chunks become ``agent.delta`` events as they come and one ``agent.message`` with the
  whole text when the message ends (another kind of update, or the turn's end); thought chunks
  become one ``agent.thinking``.
- A tool call is announced (``tool.call``) once it is asked about or starts running, with the
  most complete input seen by then: agents fill a call in over several updates (OpenCode), or
  only in the permission request (Gemini CLI). ``completed``/``failed`` gives ``tool.result``.
- Tool names are ACP tool kinds (``execute``, ``edit``, ``read``…), the same for every ACP
  agent, so one policy rule covers them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from codeyard.agents.acp.wire import (
    Chunk,
    PermissionRequest,
    Plan,
    PromptResult,
    ToolCallInfo,
    Update,
)
from codeyard.agents.base import TurnEnd
from codeyard.domain.events import (
    OUTPUT_LIMIT,
    AgentDelta,
    AgentMessage,
    AgentThinking,
    NewEvent,
    Task,
    TaskUpdated,
    ToolCall,
    Usage,
    tail,
    tool_result,
)
from codeyard.domain.tools import ToolKind, ToolRequest

__all__ = [
    "OUTPUT_LIMIT",
    "Failed",
    "NormalizeState",
    "denied",
    "finish",
    "flush",
    "normalize",
    "permission",
    "tool_kind",
]

_KINDS: dict[str, ToolKind] = {
    "execute": "bash",
    "read": "read",
    "edit": "edit",
    "delete": "edit",
    "move": "edit",
    "search": "search",
    "fetch": "fetch",
}
_TASK_STATUSES = frozenset({"pending", "in_progress", "completed"})
_STARTED = frozenset({"in_progress", "completed", "failed"})
_ENDED = frozenset({"completed", "failed"})


@dataclass(slots=True)
class _Call:
    title: str | None = None
    kind: str | None = None
    input: dict[str, Any] = field(default_factory=dict)
    announced: bool = False
    ended: bool = False
    #: Why Codeyard denied it (the agent may not report a result for a rejected call).
    denied: str | None = None


@dataclass(frozen=True, slots=True)
class Failed:
    """The turn failed; the adapter raises ``AgentFailure(reason)`` after the items before it."""

    reason: str


@dataclass(slots=True)
class NormalizeState:
    """What normalizing remembers across the updates of one turn."""

    #: Prefix of generated message ids (agents need not send ``messageId``).
    prefix: str = "acp"
    #: How an agent that reports model failures as text starts that text (Copilot CLI:
    #: ``Error: Failed to get response from the AI model…``, then ``end_turn``).
    error_marker: str | None = None
    #: The failure seen in the text, if any.
    error: str | None = None
    message_id: str | None = None
    message: list[str] = field(default_factory=list)
    thought: list[str] = field(default_factory=list)
    messages: int = 0
    #: The text of the last complete message: the turn's result.
    last_message: str | None = None
    calls: dict[str, _Call] = field(default_factory=dict)
    #: Tokens summed over the turn's model calls, from chunks that report them (Qwen Code).
    chunk_usage: dict[str, int] | None = None


def tool_kind(acp_kind: str | None) -> ToolKind:
    return _KINDS.get(acp_kind or "", "other")


def flush(state: NormalizeState) -> list[NewEvent]:
    """The message and thinking streamed so far, as complete events (the stream paused)."""
    events: list[NewEvent] = []
    if state.thought:
        text = "".join(state.thought).strip()
        state.thought.clear()
        if text:
            events.append(AgentThinking(text=text))
    if state.message:
        text = "".join(state.message)
        state.message.clear()
        if text.strip():
            events.append(AgentMessage(message_id=state.message_id, text=text))
            state.last_message = text
    state.message_id = None
    return events


def _add_usage(usage: dict[str, int], state: NormalizeState) -> None:
    total = state.chunk_usage or {}
    state.chunk_usage = {k: total.get(k, 0) + usage.get(k, 0) for k in {*total, *usage}}


def _chunk(chunk: Chunk, state: NormalizeState) -> list[NewEvent]:
    if chunk.usage is not None:
        _add_usage(chunk.usage, state)
        if not chunk.text:
            return []  # a usage report, not a message
    if chunk.thought:
        events = flush(state) if state.message else []
        state.thought.append(chunk.text)
        return events
    events = []
    if state.thought or (chunk.message_id and state.message_id not in (None, chunk.message_id)):
        events = flush(state)
    if state.message_id is None:
        state.messages += 1
        state.message_id = chunk.message_id or f"{state.prefix}-m{state.messages}"
    state.message.append(chunk.text)
    marker = state.error_marker
    if marker and chunk.text.startswith(marker):
        state.error = chunk.text.removeprefix("Error:").strip()
    if chunk.text:
        events.append(AgentDelta(message_id=state.message_id, text=chunk.text))
    return events


def _merge(info: ToolCallInfo, state: NormalizeState) -> _Call:
    call = state.calls.setdefault(info.call_id, _Call())
    if info.title:
        call.title = info.title
    if info.kind:
        call.kind = info.kind
    if info.raw_input:
        call.input = {**call.input, **info.raw_input}
    return call


def _input(call: _Call) -> dict[str, Any]:
    """The call's input; a shell call without one gets its title as the command (Gemini CLI
    titles shell calls with the command line and sends no ``rawInput``)."""
    if call.kind == "execute" and not isinstance(call.input.get("command"), str) and call.title:
        return {**call.input, "command": call.title}
    return dict(call.input)


def _title(call: _Call, tool_input: dict[str, Any]) -> str:
    if call.kind == "execute" and isinstance(tool_input.get("command"), str):
        return f"$ {tool_input['command']}"
    return call.title or call.kind or "tool"


def _announce(call_id: str, call: _Call) -> list[NewEvent]:
    if call.announced:
        return []
    call.announced = True
    tool_input = _input(call)
    announced = ToolCall(
        call_id=call_id,
        tool=call.kind or "other",
        kind=tool_kind(call.kind),
        title=_title(call, tool_input),
        input=tool_input,
    )
    return [announced]


def _exit_code(raw_output: Any) -> int | None:
    """The exit code in ``rawOutput`` where agents put one (OpenCode, Copilot, Codex)."""
    if not isinstance(raw_output, dict):
        return None
    if isinstance(raw_output.get("exit_code"), int):
        return int(raw_output["exit_code"])
    metadata = raw_output.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("exit"), int):
        return int(metadata["exit"])
    for item in raw_output.get("contents") or []:
        if isinstance(item, dict) and isinstance(item.get("exitCode"), int):
            return int(item["exitCode"])
    return None


def _output_text(info: ToolCallInfo) -> str:
    if info.content:
        return info.content
    raw = info.raw_output
    if isinstance(raw, str):
        return raw
    if isinstance(raw, dict):
        for key in ("output", "aggregated_output", "content", "error", "message"):
            if isinstance(raw.get(key), str):
                return str(raw[key])
    return ""


def _failure(text: str, denied: str | None) -> str:
    """Why a call failed: Codeyard's denial first (the agent's words may not say why)."""
    if denied and text and text not in denied:
        return f"{denied} ({text})"
    return denied or text or "the tool call failed"


def _tool(info: ToolCallInfo, state: NormalizeState) -> list[NewEvent]:
    events = flush(state)
    call = _merge(info, state)
    if info.status in _STARTED:
        events += _announce(info.call_id, call)
    if info.status in _ENDED and not call.ended:
        call.ended = True
        ok = info.status == "completed"
        text = tail(_output_text(info))  # before the denial is put in front of it
        # ACP reports no per-call durations: ``duration_ms`` stays 0.
        result = tool_result(
            info.call_id,
            ok=ok,
            output=text if ok else "",
            error=None if ok else _failure(text, call.denied),
            exit_code=_exit_code(info.raw_output),
        )
        events.append(result)
    return events


def _plan(plan: Plan, state: NormalizeState) -> list[NewEvent]:
    tasks = [
        Task(
            content=e["content"],
            status=e["status"] if e["status"] in _TASK_STATUSES else "pending",
        )
        for e in plan.entries
    ]
    return [*flush(state), TaskUpdated(tasks=tasks)]


def normalize(update: Update, state: NormalizeState) -> list[NewEvent]:
    """The Codeyard events for one ``session/update`` (often none)."""
    if isinstance(update, Chunk):
        return _chunk(update, state)
    if isinstance(update, ToolCallInfo):
        return _tool(update, state)
    if isinstance(update, Plan):
        return _plan(update, state)
    return []  # context-window use, commands, modes, titles: nothing to show


def permission(
    request: PermissionRequest, state: NormalizeState
) -> tuple[list[NewEvent], ToolRequest]:
    """A permission request: the call's announcement (if not made yet) and what to decide."""
    info = request.tool_call
    events = flush(state)
    call = _merge(info, state)
    events += _announce(info.call_id, call)
    return events, ToolRequest(
        info.call_id, call.kind or "other", tool_kind(call.kind), _input(call)
    )


def denied(call_id: str, reason: str, state: NormalizeState) -> None:
    """Codeyard denied the call: the reason stands in for a result the agent may not send."""
    state.calls.setdefault(call_id, _Call()).denied = reason


def finish(result: PromptResult, state: NormalizeState) -> list[NewEvent | TurnEnd | Failed]:
    """The end of a ``session/prompt``: pending text, results of denied calls, usage, and the
    turn's end (or its failure, when the agent reported one as text and no usage)."""
    items: list[NewEvent | TurnEnd | Failed] = list(flush(state))
    for call_id, call in state.calls.items():
        if call.denied is not None and not call.ended:
            call.ended = True
            items.append(tool_result(call_id, ok=False, error=call.denied))
    usage = result.usage if result.usage is not None else state.chunk_usage
    if usage is not None:
        # No ACP agent reports a cost: Codeyard prices the tokens (the sink, by model).
        items.append(Usage.of(usage, model=result.model or None))
    elif state.error is not None and result.stop_reason == "end_turn":
        items.append(Failed(state.error))
        return items
    items.append(TurnEnd(result.stop_reason, state.last_message))
    return items
