"""Read models folded from a run's events (API.md, "Run data").

The event log is the only record of what an agent did; transcript, timeline, commands, tasks,
telemetry and summary are all views computed from it. Keeping the folds pure means the routes,
the snapshot and recorded-transcript tests share one definition of each view. Events are the
API's dicts (``{id, run_id, seq, type, ts, data}``) in log order.

An old or partial log must still render, so a fold never raises: unknown types are left out and
a missing or malformed key reads as absent. But it is not silent about it either: each public
fold first checks every event against its type's model (``codeyard.domain.events``) and logs a
warning naming the events that do not fit and why (see :func:`malformed`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from codeyard.domain.events import try_parse_event

log = logging.getLogger(__name__)

Event = Mapping[str, Any]
Item = dict[str, Any]

OUTPUT_TAIL_CHARS = 2000
SUMMARY_CHARS = 200
USAGE_TOKEN_KEYS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")

#: Commands that run a test suite, for the summary's ``tests_run``.
TEST_COMMAND = re.compile(
    r"\b(py\.?test|tox|nox|python3?\s+-m\s+unittest"
    r"|(npm|pnpm|yarn|bun)\s+(run\s+)?test|go\s+test|cargo\s+(test|nextest)"
    r"|make\s+(test|check)|jest|vitest|mocha|rspec|phpunit|ctest"
    r"|mvn\s+test|gradlew?\s+test|dotnet\s+test|mix\s+test|deno\s+test)\b"
)


def malformed(events: Sequence[Event]) -> list[tuple[Any, str, str]]:
    """``(id, type, why)`` of each event whose data does not fit its type's model."""
    found = []
    for event in events:
        type_, data = str(event.get("type", "")), event.get("data")
        if not isinstance(data, dict):
            found.append((event.get("id"), type_, "data: not an object"))
            continue
        _, why = try_parse_event(type_, data)
        if why is not None:
            found.append((event.get("id"), type_, why))
    return found


def _report(events: Sequence[Event], view: str) -> None:
    """Log what a fold is about to read around: malformed events are a bug to find, not hide."""
    bad = malformed(events)
    if bad:
        run_id = events[0].get("run_id")
        first = bad[0]
        log.warning(
            "%s of run %s: %d event(s) do not fit their type and are read leniently "
            "(first: event %s %s: %s)",
            view,
            run_id,
            len(bad),
            *first,
        )


def _entries(events: Sequence[Event]) -> Iterator[tuple[str, dict[str, Any], str | None]]:
    """``(type, data, ts)`` per event, with a missing or non-dict ``data`` read as empty."""
    for event in events:
        yield str(event.get("type", "")), _dict(event.get("data")), event.get("ts")


def _of_type(events: Sequence[Event], kind: str) -> Iterator[tuple[dict[str, Any], str | None]]:
    return ((data, ts) for type_, data, ts in _entries(events) if type_ == kind)


def _key(value: Any) -> str | int | None:
    """An id usable as a dict key; anything malformed counts as absent."""
    return value if isinstance(value, str | int) and not isinstance(value, bool) else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _num(value: Any) -> int | float:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _ok(result: Mapping[str, Any]) -> bool:
    """A result without ``ok`` succeeded if it has no error and a zero (or no) exit code."""
    ok = result.get("ok")
    if isinstance(ok, bool):
        return ok
    return not result.get("error") and result.get("exit_code") in (None, 0)


def _results(events: Sequence[Event]) -> dict[str | int, dict[str, Any]]:
    """Tool results by call id, so a call finds its result whatever order they were logged in."""
    results: dict[str | int, dict[str, Any]] = {}
    for data, _ in _of_type(events, "tool.result"):
        if (call_id := _key(data.get("call_id"))) is not None:
            results[call_id] = data
    return results


class _Transcript:
    """Folding state: items in order, plus indexes of the items later events update."""

    def __init__(self) -> None:
        self.items: list[Item] = []
        self.messages: dict[str | int | None, Item] = {}
        self.final: set[str | int] = set()
        self.tools: dict[str | int | None, Item] = {}
        self.approvals: dict[str | int | None, Item] = {}

    def _add(self, item: Item) -> Item:
        self.items.append(item)
        return item

    def _assistant(self, message_id: str | int | None, ts: str | None) -> Item:
        item = self.messages.get(message_id)
        if item is None:
            item = {"kind": "assistant", "message_id": message_id, "text": "", "ts": ts}
            self.messages[message_id] = self._add(item)
        return item

    def turn_started(self, data: dict[str, Any], ts: str | None) -> None:
        # A message turn's prompt is already in the transcript as the user.message it came from.
        if data.get("source") in ("message", "agent_merge"):
            return
        if prompt := _text(data.get("prompt")):
            self._add({"kind": "user", "text": prompt, "author": "operator", "ts": ts})

    def user_message(self, data: dict[str, Any], ts: str | None) -> None:
        author = data.get("author") or "operator"
        self._add({"kind": "user", "text": _text(data.get("text")), "author": author, "ts": ts})

    def delta(self, data: dict[str, Any], ts: str | None) -> None:
        message_id = _key(data.get("message_id"))
        if message_id is None or message_id not in self.final:
            self._assistant(message_id, ts)["text"] += _text(data.get("text"))

    def message(self, data: dict[str, Any], ts: str | None) -> None:
        """The final text replaces whatever deltas streamed under the same id."""
        message_id = _key(data.get("message_id"))
        self._assistant(message_id, ts)["text"] = _text(data.get("text"))
        if message_id is None:
            del self.messages[None]  # the next id-less stream is a new message
        else:
            self.final.add(message_id)

    def thinking(self, data: dict[str, Any], ts: str | None) -> None:
        self._add({"kind": "thinking", "text": _text(data.get("text")), "ts": ts})

    def tool_call(self, data: dict[str, Any], ts: str | None) -> None:
        item = self._add(
            {
                "kind": "tool",
                "call_id": data.get("call_id"),
                "tool": data.get("tool"),
                "tool_kind": data.get("kind"),
                "title": data.get("title"),
                "input": data.get("input"),
                "ok": None,
                "output": None,
                "error": None,
                "exit_code": None,
                "duration_ms": None,
                "status": "running",
                "ts": ts,
            }
        )
        if (call_id := _key(data.get("call_id"))) is not None:
            self.tools[call_id] = item

    def tool_result(self, data: dict[str, Any], ts: str | None) -> None:
        item = self.tools.get(_key(data.get("call_id")))
        if item is not None:
            ok = _ok(data)
            item.update(
                ok=ok,
                output=data.get("output"),
                error=data.get("error"),
                exit_code=data.get("exit_code"),
                duration_ms=data.get("duration_ms"),
                status="done" if ok else "failed",
            )

    def approval_requested(self, data: dict[str, Any], ts: str | None) -> None:
        approval = _dict(data.get("approval"))
        item = self._add(
            {
                "kind": "approval",
                "approval_id": approval.get("id"),
                "tool": approval.get("tool"),
                "approval_kind": approval.get("kind"),
                "title": approval.get("title"),
                "input": approval.get("input"),
                "status": approval.get("status") or "pending",
                "decided_by": None,
                "reason": None,
                "ts": ts,
            }
        )
        if (approval_id := _key(approval.get("id"))) is not None:
            self.approvals[approval_id] = item

    def approval_resolved(self, data: dict[str, Any], ts: str | None) -> None:
        item = self.approvals.get(_key(data.get("approval_id")))
        if item is not None:
            item.update(
                status=data.get("decision") or "resolved",
                decided_by=data.get("decided_by"),
                reason=data.get("reason"),
            )

    def turn_completed(self, data: dict[str, Any], ts: str | None) -> None:
        self._add(
            {
                "kind": "turn",
                "turn": data.get("turn"),
                "stop_reason": data.get("stop_reason"),
                "result": data.get("result"),
                "ts": ts,
            }
        )

    def error(self, data: dict[str, Any], ts: str | None) -> None:
        self._add({"kind": "error", "message": _text(data.get("message")), "ts": ts})


_TRANSCRIPT_HANDLERS: dict[str, Callable[[_Transcript, dict[str, Any], str | None], None]] = {
    "turn.started": _Transcript.turn_started,
    "user.message": _Transcript.user_message,
    "agent.delta": _Transcript.delta,
    "agent.message": _Transcript.message,
    "agent.thinking": _Transcript.thinking,
    "tool.call": _Transcript.tool_call,
    "tool.result": _Transcript.tool_result,
    "approval.requested": _Transcript.approval_requested,
    "approval.resolved": _Transcript.approval_resolved,
    "turn.completed": _Transcript.turn_completed,
    "error": _Transcript.error,
}


def transcript(events: Sequence[Event]) -> list[Item]:
    """Messages, thinking, tool calls, approvals and turn ends, as a chat view shows them."""
    _report(events, "transcript")
    state = _Transcript()
    for type_, data, ts in _entries(events):
        if handler := _TRANSCRIPT_HANDLERS.get(type_):
            handler(state, data, ts)
    return state.items


def _checkpoint(data: Mapping[str, Any]) -> str:
    checkpoint = _dict(data.get("checkpoint"))
    return f"Checkpoint {checkpoint.get('description') or checkpoint.get('id') or ''}".strip()


def _approval_requested(data: Mapping[str, Any]) -> str:
    approval = _dict(data.get("approval"))
    return f"Approval requested: {approval.get('title') or approval.get('tool') or '?'}"


def _approval_resolved(data: Mapping[str, Any]) -> str:
    by = f" by {data['decided_by']}" if data.get("decided_by") else ""
    return f"Approval {data.get('decision') or 'resolved'}{by}"


_MILESTONES: dict[str, Callable[[Mapping[str, Any]], str]] = {
    "turn.started": lambda d: f"Turn {d.get('turn', '?')} started",
    "turn.completed": lambda d: f"Turn {d.get('turn', '?')} ended: {d.get('stop_reason') or '?'}",
    "approval.requested": _approval_requested,
    "approval.resolved": _approval_resolved,
    "checkpoint.created": _checkpoint,
    "git.committed": lambda d: f"Committed {_text(d.get('sha'))[:7]}".strip(),
    "git.merged": lambda d: f"Merged into {d.get('target') or '?'} ({d.get('strategy') or '?'})",
    "git.pushed": lambda d: f"Pushed {d.get('branch') or '?'} to {d.get('remote') or '?'}",
    "pr.created": lambda d: f"Pull request #{d.get('number', '?')} {d.get('url') or ''}".strip(),
    "error": lambda d: _text(d.get("message")) or "Error",
}


def timeline(events: Sequence[Event]) -> list[Item]:
    """Status changes and milestones, the run's history at a glance."""
    _report(events, "timeline")
    entries: list[Item] = []
    for type_, data, ts in _entries(events):
        if type_ == "run.status":
            entries.append(
                {
                    "ts": ts,
                    "type": "status",
                    "from": data.get("from"),
                    "to": data.get("to"),
                    "reason": data.get("reason"),
                }
            )
        elif describe := _MILESTONES.get(type_):
            summary = describe(data)[:SUMMARY_CHARS]
            entries.append({"ts": ts, "type": type_, "summary": summary})
    return entries


def tasks(events: Sequence[Event]) -> list[Item]:
    """The agent rewrites its whole todo list each time, so only the latest one counts."""
    _report(events, "tasks")
    latest: list[Item] = []
    for data, _ in _of_type(events, "task.updated"):
        if isinstance(items := data.get("tasks"), list):
            latest = [task for task in items if isinstance(task, dict)]
    return latest


def _command(tool_input: Any) -> str:
    if isinstance(tool_input, dict):
        return _text(tool_input.get("command"))
    return _text(tool_input)


def commands(events: Sequence[Event]) -> list[Item]:
    """Shell commands with their outcome; result fields stay None while a command runs."""
    _report(events, "commands")
    return _commands(events)


def _commands(events: Sequence[Event]) -> list[Item]:
    results = _results(events)
    found: list[Item] = []
    for data, ts in _of_type(events, "tool.call"):
        if data.get("kind") != "bash":
            continue
        call_id = _key(data.get("call_id"))
        result = results.get(call_id) if call_id is not None else None
        tail = None
        if result is not None:
            tail = (_text(result.get("output")) or _text(result.get("error")))[-OUTPUT_TAIL_CHARS:]
        found.append(
            {
                "call_id": data.get("call_id"),
                "command": _command(data.get("input")),
                "exit_code": result.get("exit_code") if result else None,
                "duration_ms": result.get("duration_ms") if result else None,
                "output_tail": tail,
                "ts": ts,
            }
        )
    return found


def usage_total(events: Sequence[Event]) -> dict[str, Any]:
    """Sum of the ``usage`` events; each one is an increment, not a running total."""
    _report(events, "usage")
    return _usage_total(events)


def _usage_total(events: Sequence[Event]) -> dict[str, Any]:
    total: dict[str, Any] = dict.fromkeys(USAGE_TOKEN_KEYS, 0)
    cost = 0.0
    for data, _ in _of_type(events, "usage"):
        for key in USAGE_TOKEN_KEYS:
            total[key] += _num(data.get(key))
        cost += _num(data.get("cost_usd"))
    total["cost_usd"] = round(cost, 6)  # keep float noise out of the JSON
    return total


def _tool_stats(events: Sequence[Event]) -> dict[str, Item]:
    results = _results(events)
    stats: dict[str, Item] = {}
    for data, _ in _of_type(events, "tool.call"):
        entry = stats.setdefault(
            str(data.get("tool") or "unknown"), {"calls": 0, "failures": 0, "duration_ms": 0}
        )
        entry["calls"] += 1
        call_id = _key(data.get("call_id"))
        if call_id is not None and (result := results.get(call_id)) is not None:
            entry["failures"] += 0 if _ok(result) else 1
            entry["duration_ms"] += _num(result.get("duration_ms"))
    return stats


def telemetry(events: Sequence[Event]) -> dict[str, Any]:
    """Usage, cost, durations and per-tool counts, for the run's stats panel."""
    _report(events, "telemetry")
    turns = [data for data, _ in _of_type(events, "turn.completed")]
    stamps = [ts for _, _, ts in _entries(events) if ts]
    tools = _tool_stats(events)
    return {
        "usage": _usage_total(events),
        "turns": len(turns),
        "tool_calls": sum(entry["calls"] for entry in tools.values()),
        "tools": tools,
        "duration_ms": sum(_num(data.get("duration_ms")) for data in turns),
        "messages": sum(1 for _ in _of_type(events, "agent.message")),
        "first_event_at": stamps[0] if stamps else None,
        "last_event_at": stamps[-1] if stamps else None,
    }


def _changed_files(events: Sequence[Event]) -> list[Item]:
    last: dict[str, Any] = {}
    for data, _ in _of_type(events, "file.changed"):
        if path := _text(data.get("path")):
            last[path] = data.get("change")
    return [{"path": path, "change": last[path]} for path in sorted(last)]


def summary(events: Sequence[Event]) -> dict[str, Any]:
    """What a reviewer wants first: files touched, commands and tests run, the last word."""
    _report(events, "summary")
    ran = [entry["command"] for entry in _commands(events) if entry["command"]]
    final = [_text(data.get("text")) for data, _ in _of_type(events, "agent.message")]
    return {
        "changed_files": _changed_files(events),
        "commands": ran,
        "tests_run": [command for command in ran if TEST_COMMAND.search(command)],
        "final_message": final[-1] if final else None,
        "turns": sum(1 for _ in _of_type(events, "turn.completed")),
    }
