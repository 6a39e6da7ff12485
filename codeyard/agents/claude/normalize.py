"""Claude Code stream-json messages → Codeyard events (API.md, "Events"). Pure: no I/O.

``normalize(message, state)`` maps one typed message to the items an adapter yields. The only
memory it needs between messages (tool names by call id, the session's cumulative cost) lives in
an explicit :class:`NormalizeState`, so recorded transcripts replay through it in unit tests.

Usage as it streams: each model message (one id, often several content blocks) is counted once
as its counts grow — its start (input, cache, one output token) and, with partial messages, its
``message_delta`` (the output so far) — so the run's figures move during a turn; sub-agents' calls
and side calls are not seen here. The result's figures are the CLI's own for the turn: they become
a :class:`UsageTotal`, of which the executor records only what the live counts left out.

Cost: ``total_cost_usd`` is cumulative per CLI process, and a resumed session starts from the
total it had. Newer CLIs also report ``model_usage_since_last_result`` (per-model tokens and
``costUSD`` since the previous result, side calls included), which is used when present; else the
turn's cost is the difference from the last total seen.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from codeyard.agents.base import ModelRetrying, SessionUpdate, TurnEnd, UsageTotal
from codeyard.agents.claude.stream_json import (
    AssistantMessage,
    ResultMessage,
    StreamEvent,
    StreamMessage,
    SystemInit,
    SystemMessage,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
    UserMessage,
)
from codeyard.domain.events import (
    OUTPUT_LIMIT,
    AgentDelta,
    AgentMessage,
    AgentSession,
    AgentThinking,
    NewEvent,
    Task,
    TaskUpdated,
    ToolCall,
    ToolResult,
    Usage,
    tool_result,
)
from codeyard.domain.tools import ToolKind

__all__ = [
    "OUTPUT_LIMIT",
    "PROVIDER",
    "Failed",
    "NormalizeState",
    "NormalizedItem",
    "normalize",
    "tool_kind",
    "tool_title",
]

PROVIDER = "claude-code"
_KINDS: dict[str, ToolKind] = {
    "Bash": "bash",
    "BashOutput": "bash",
    "KillShell": "bash",
    "Write": "write",
    "Edit": "edit",
    "MultiEdit": "edit",
    "NotebookEdit": "edit",
    "Read": "read",
    "NotebookRead": "read",
    "LS": "read",
    "Glob": "search",
    "Grep": "search",
    "ToolSearch": "search",
    "WebFetch": "fetch",
    "WebSearch": "fetch",
    "Task": "task",
    "Agent": "task",
    "TodoWrite": "task",
    "TaskCreate": "task",
    "TaskUpdate": "task",
    "TaskGet": "task",
    "TaskList": "task",
    "TaskStop": "task",
    "TaskOutput": "task",
}
_EXIT_CODE = re.compile(r"^Exit code (\d+)")
_TODO_STATUSES = frozenset({"pending", "in_progress", "completed"})


@dataclass(frozen=True, slots=True)
class Failed:
    """The turn failed; the adapter raises ``AgentFailure(reason)`` after the items before it."""

    reason: str


NormalizedItem = NewEvent | SessionUpdate | TurnEnd | UsageTotal | Failed
_COUNTS = (
    ("input_tokens", "input_tokens"),
    ("output_tokens", "output_tokens"),
    ("cache_read_tokens", "cache_read_input_tokens"),
    ("cache_write_tokens", "cache_creation_input_tokens"),
)


@dataclass(slots=True)
class NormalizeState:
    """What normalizing needs to remember across the messages of one turn."""

    session_id: str | None = None
    #: The session's cumulative ``total_cost_usd`` as last reported (persisted across turns).
    cost_total: float = 0.0
    #: Whether this process resumed a session (its cost counter then starts at ``cost_total``).
    resumed: bool = False
    #: Set by the adapter when it interrupted the turn itself (cancel, pause).
    interrupting: bool = False
    calls: dict[str, str] = field(default_factory=dict)
    results: int = 0
    #: The session's task list kept by ``TaskCreate``/``TaskUpdate`` (id → content, status),
    #: persisted across turns because the tools only ever report one task at a time.
    tasks: dict[str, dict[str, str]] = field(default_factory=dict)
    #: Inputs of task tools in flight, to apply once their result confirms them.
    task_inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: With partial messages: the model message streaming now, and per model message the
    #: ids of its streamed text blocks not yet completed (the final text takes the same id).
    streaming: str | None = None
    streamed_texts: dict[str, list[str]] = field(default_factory=dict)
    #: Per model message of this turn: the highest counts seen for it, already yielded.
    counted: dict[str, dict[str, int]] = field(default_factory=dict)

    def persisted(self) -> dict[str, Any]:
        """The part of the state saved with the run (``agent_state``) for the next turn."""
        return {"cost_total": self.cost_total, "tasks": self.tasks}


def tool_kind(name: str) -> ToolKind:
    if name.startswith("mcp__"):
        return "mcp"
    return _KINDS.get(name, "other")


def tool_title(name: str, tool_input: dict[str, Any]) -> str:
    """A one-line summary a person can scan: ``$ make test``, ``Edit src/app.py``…"""
    if name == "Bash" and isinstance(tool_input.get("command"), str):
        return f"$ {tool_input['command']}"
    for key in ("file_path", "notebook_path", "path", "pattern", "url", "query", "description"):
        value = tool_input.get(key)
        if isinstance(value, str) and value:
            return f"{name} {value}"
    return name


def _dict_of(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [b.get("text", "") for b in content if isinstance(b, dict)]
        return "\n".join(p for p in parts if isinstance(p, str))
    return "" if content is None else str(content)


def _todo_event(tool_input: dict[str, Any]) -> TaskUpdated | None:
    todos = tool_input.get("todos")
    if not isinstance(todos, list):
        return None
    tasks = [
        Task(
            content=str(t.get("content", "")),
            status=t["status"] if t.get("status") in _TODO_STATUSES else "pending",
        )
        for t in todos
        if isinstance(t, dict)
    ]
    return TaskUpdated(tasks=tasks)


def _counts(usage: dict[str, Any]) -> dict[str, int]:
    """Anthropic's usage fields as Codeyard's four counts (a missing or odd one is 0)."""
    out: dict[str, int] = {}
    for ours, theirs in _COUNTS:
        value = usage.get(theirs)
        out[ours] = value if isinstance(value, int) and not isinstance(value, bool) else 0
    return out


def _live_usage(message_id: str | None, usage: Any, state: NormalizeState) -> list[NormalizedItem]:
    """A ``usage`` event of what one model message's counts grew by since last seen.

    Every block of a message repeats the message's usage and ``message_delta`` restates its
    output so far, so each count is kept at its highest per message id and only growth is
    yielded: a message is never counted twice. The cost is estimated from the price map until
    the turn's result settles it.
    """
    if not message_id or not isinstance(usage, dict):
        return []
    seen = state.counted.setdefault(message_id, dict.fromkeys((k for k, _ in _COUNTS), 0))
    now = _counts(usage)
    grown = {k: max(0, now[k] - seen[k]) for k in now}
    if not any(grown.values()):
        return []
    for key, value in grown.items():
        seen[key] += value
    # Priced from the map by the executor until the result settles it.
    return [
        Usage(
            input_tokens=grown["input_tokens"],
            output_tokens=grown["output_tokens"],
            cache_read_tokens=grown["cache_read_tokens"],
            cache_write_tokens=grown["cache_write_tokens"],
            cost_source="estimate",  # made once (a copy to set it validated nothing more)
        )
    ]


def _assistant(message: AssistantMessage, state: NormalizeState) -> list[NormalizedItem]:
    items: list[NormalizedItem] = []
    if message.parent_tool_use_id is None and message.error is None:
        items += _live_usage(message.message_id, message.usage, state)
    for index, block in enumerate(message.blocks):
        if isinstance(block, TextBlock) and block.text:
            streamed = state.streamed_texts.get(message.message_id or "")
            fallback = message.uuid or f"{message.message_id}_{index}"
            ident = streamed.pop(0) if streamed else fallback
            items.append(AgentMessage(message_id=ident, text=block.text))
        elif isinstance(block, ThinkingBlock) and block.thinking:
            items.append(AgentThinking(text=block.thinking))
        elif isinstance(block, ToolUseBlock):
            state.calls[block.id] = block.name
            call = ToolCall(
                call_id=block.id,
                tool=block.name,
                kind=tool_kind(block.name),
                title=tool_title(block.name, block.input),
                input=block.input,
            )
            items.append(call)
            todo = _todo_event(block.input) if block.name == "TodoWrite" else None
            if todo is not None:
                items.append(todo)
            if block.name in ("TaskCreate", "TaskUpdate"):
                state.task_inputs[block.id] = block.input
    return items


def _task_event(call_id: str, structured: Any, state: NormalizeState) -> TaskUpdated | None:
    """Apply a confirmed ``TaskCreate``/``TaskUpdate`` to the task list; the whole list."""
    tool_input = state.task_inputs.pop(call_id, None)
    if tool_input is None or not isinstance(structured, dict):
        return None
    created = structured.get("task")
    if isinstance(created, dict) and created.get("id") is not None:
        content = str(created.get("subject") or tool_input.get("subject") or "")
        state.tasks[str(created["id"])] = {"content": content, "status": "pending"}
    elif structured.get("success") and structured.get("taskId") is not None:
        task = state.tasks.setdefault(str(structured["taskId"]), {"content": "", "status": ""})
        change = structured.get("statusChange")
        status = change.get("to") if isinstance(change, dict) else tool_input.get("status")
        if status == "deleted":
            del state.tasks[str(structured["taskId"])]
        elif status in _TODO_STATUSES:
            task["status"] = status
        if isinstance(tool_input.get("subject"), str) and tool_input["subject"]:
            task["content"] = tool_input["subject"]
        task["status"] = task["status"] or "pending"
    else:
        return None
    return TaskUpdated(tasks=[Task(**t) for t in state.tasks.values()])


def _tool_result(block: ToolResultBlock, structured: Any, state: NormalizeState) -> ToolResult:
    # The CLI reports no per-tool durations in stream-json: ``duration_ms`` stays 0.
    name = state.calls.pop(block.tool_use_id, None)
    text = _text_of(block.content)
    if block.is_error:
        match = _EXIT_CODE.match(text)
        code = int(match.group(1)) if match else None
        return tool_result(block.tool_use_id, ok=False, error=text, exit_code=code)
    if name == "Bash" and isinstance(structured, dict):
        out = "\n".join(s for s in (structured.get("stdout"), structured.get("stderr")) if s)
        text = out if isinstance(out, str) and out else text
        return tool_result(block.tool_use_id, ok=True, output=text, exit_code=0)
    return tool_result(block.tool_use_id, ok=True, output=text)


def _user(message: UserMessage, state: NormalizeState) -> list[NormalizedItem]:
    results = [b for b in message.blocks if isinstance(b, ToolResultBlock)]
    # The structured result belongs to the message's (single) tool result.
    structured = message.tool_use_result if len(results) == 1 else None
    items: list[NormalizedItem] = []
    for block in results:
        items.append(_tool_result(block, structured, state))
        if block.tool_use_id in state.task_inputs and not block.is_error:
            task = _task_event(block.tool_use_id, structured, state)
            if task is not None:
                items.append(task)
    return items


def _usage_since_last(result: ResultMessage) -> tuple[dict[str, int], float] | None:
    since = result.model_usage_since_last_result
    if since is None:
        return None
    tokens = dict.fromkeys(
        ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"), 0
    )
    cost = 0.0
    for per_model in since.values():
        if not isinstance(per_model, dict):
            continue
        tokens["input_tokens"] += int(per_model.get("inputTokens") or 0)
        tokens["output_tokens"] += int(per_model.get("outputTokens") or 0)
        tokens["cache_read_tokens"] += int(per_model.get("cacheReadInputTokens") or 0)
        tokens["cache_write_tokens"] += int(per_model.get("cacheCreationInputTokens") or 0)
        cost += float(per_model.get("costUSD") or 0.0)
    return tokens, cost


def _cost_by_difference(result: ResultMessage, state: NormalizeState) -> float | None:
    total = result.total_cost_usd
    if total is None:
        return None  # not reported: the executor prices the tokens
    first = state.results == 0
    # A fresh process counts from zero unless it resumed a session and restored that total.
    baseline = (
        state.cost_total if (not first or (state.resumed and total >= state.cost_total)) else 0.0
    )
    return max(0.0, total - baseline)


def _usage_event(result: ResultMessage, state: NormalizeState) -> Usage:
    since = _usage_since_last(result)
    cost: float | None
    if since is not None:
        tokens, cost = since
    else:
        tokens = _counts(result.usage)
        cost = _cost_by_difference(result, state)
    return Usage.of(tokens, cost_usd=None if cost is None else round(cost, 8))


def _result(result: ResultMessage, state: NormalizeState) -> list[NormalizedItem]:
    usage = UsageTotal(_usage_event(result, state))
    state.counted.clear()
    state.results += 1
    if result.total_cost_usd is not None:
        state.cost_total = result.total_cost_usd
    session_id = result.session_id or state.session_id
    state.session_id = session_id
    items: list[NormalizedItem] = [usage, SessionUpdate(session_id, state.persisted())]
    if not result.is_error:
        items.append(TurnEnd(result.stop_reason or "end_turn", result.result))
    elif result.subtype == "error_max_turns":
        items.append(TurnEnd("max_turns", result.result))
    elif result.subtype == "error_max_budget_usd":
        items.append(TurnEnd("max_budget", result.result))
    elif state.interrupting:
        items.append(TurnEnd("interrupted", result.result))
    else:
        detail = result.result or "; ".join(result.errors) or result.subtype or "unknown error"
        items.append(Failed(f"Claude Code failed the turn: {detail}"))
    return items


def _stream_event(message: StreamEvent, state: NormalizeState) -> list[NormalizedItem]:
    """Text as the model streams it (``--include-partial-messages``): ``agent.delta`` events
    under the id the completed ``agent.message`` will carry. Sub-agents' streams are skipped."""
    if message.parent_tool_use_id is not None:
        return []
    event = message.event
    kind = event.get("type")
    if kind == "message_start":
        started = event.get("message")
        state.streaming = started.get("id") if isinstance(started, dict) else None
        return _live_usage(state.streaming, _dict_of(started).get("usage"), state)
    if kind == "message_delta":
        return _live_usage(state.streaming, event.get("usage"), state)
    if state.streaming is None or not isinstance(event.get("index"), int):
        return []
    ident = f"{state.streaming}_b{event['index']}"
    if kind == "content_block_start":
        block = event.get("content_block")
        if isinstance(block, dict) and block.get("type") == "text":
            state.streamed_texts.setdefault(state.streaming, []).append(ident)
        return []
    delta = event.get("delta")
    if (
        kind == "content_block_delta"
        and isinstance(delta, dict)
        and delta.get("type") == ("text_delta")
    ):
        text = delta.get("text")
        if isinstance(text, str) and text:
            return [AgentDelta(message_id=ident, text=text)]
    return []


def _retrying(raw: dict[str, Any]) -> ModelRetrying:
    """``system/api_retry``: the CLI could not get an answer from its model API and tries again
    by itself (ten times, backing off to minutes). Shown, so a silent turn says why; the
    executor fails the turn when these go on (``model_unreachable_seconds``)."""
    error = raw.get("error") or "no answer"
    status = raw.get("error_status")
    said = f"{error} (HTTP {status})" if status else str(error)
    attempt, most = raw.get("attempt"), raw.get("max_retries")
    tries = f"attempt {attempt} of {most}" if attempt and most else "retrying"
    delay = raw.get("retry_delay_ms")
    detail = f"next try in {delay / 1000:.1f} s" if isinstance(delay, int | float) else None
    return ModelRetrying(
        message=f"Claude Code could not reach its model API ({tries}): {said}", detail=detail
    )


def normalize(message: StreamMessage, state: NormalizeState) -> list[NormalizedItem]:
    """The Codeyard items for one Claude Code message (often none)."""
    if isinstance(message, SystemInit):
        state.session_id = message.session_id
        session = AgentSession(
            session_id=message.session_id,
            provider=PROVIDER,
            cli_version=message.cli_version,
            model=message.model,
            tools=message.tools,
        )
        return [
            session,
            SessionUpdate(message.session_id, state.persisted()),
        ]
    if isinstance(message, AssistantMessage):
        return _assistant(message, state)
    if isinstance(message, UserMessage):
        return _user(message, state)
    if isinstance(message, ResultMessage):
        return _result(result=message, state=state)
    if isinstance(message, StreamEvent):
        return _stream_event(message, state)
    if isinstance(message, SystemMessage) and message.subtype == "api_retry":
        return [_retrying(message.raw)]
    return []
