"""The read models folded from a run's events (codeyard.domain.fold)."""

from __future__ import annotations

import itertools
import logging
from datetime import datetime, timedelta
from typing import Any

import pytest

from codeyard.domain import fold

_numbers = itertools.count(1)
_START = datetime(2026, 11, 22, 8, 0, 0)


def ev(type_: str, **data: Any) -> dict[str, Any]:
    """An API-shaped event; ids, seqs and timestamps keep rising so every list is in log order."""
    n = next(_numbers)
    ts = (_START + timedelta(seconds=n)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return {"id": n, "run_id": "run_1", "seq": n, "type": type_, "ts": ts, "data": data}


def strip_ts(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in item.items() if k != "ts"} for item in items]


def call(call_id: str, tool: str = "Bash", kind: str = "bash", **input_: Any) -> dict[str, Any]:
    return ev("tool.call", call_id=call_id, tool=tool, kind=kind, title=tool, input=input_)


def result(call_id: str, ok: bool = True, **fields: Any) -> dict[str, Any]:
    return ev("tool.result", call_id=call_id, ok=ok, **fields)


# --- transcript ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        pytest.param(
            [ev("turn.started", turn=1, prompt="Fix it", source="create")],
            [{"kind": "user", "text": "Fix it", "author": "operator"}],
            id="prompt-is-a-user-item",
        ),
        pytest.param(
            [ev("turn.started", turn=2, prompt="", source="resume")], [], id="empty-prompt-skipped"
        ),
        pytest.param(
            [ev("user.message", text="also docs", author="ann")],
            [{"kind": "user", "text": "also docs", "author": "ann"}],
            id="user-message",
        ),
        pytest.param(
            [
                ev("agent.delta", message_id="m1", text="Hel"),
                ev("agent.delta", message_id="m1", text="lo"),
            ],
            [{"kind": "assistant", "message_id": "m1", "text": "Hello"}],
            id="deltas-accumulate",
        ),
        pytest.param(
            [
                ev("agent.delta", message_id="m1", text="Hel"),
                ev("agent.message", message_id="m1", text="Hello, done."),
                ev("agent.delta", message_id="m1", text=" late"),
            ],
            [{"kind": "assistant", "message_id": "m1", "text": "Hello, done."}],
            id="final-message-replaces-deltas",
        ),
        pytest.param(
            [
                ev("agent.delta", message_id="m1", text="a"),
                ev("agent.delta", message_id="m2", text="b"),
                ev("agent.message", message_id="m1", text="A"),
            ],
            [
                {"kind": "assistant", "message_id": "m1", "text": "A"},
                {"kind": "assistant", "message_id": "m2", "text": "b"},
            ],
            id="deltas-grouped-by-message-id",
        ),
        pytest.param(
            [
                ev("agent.delta", text="x"),
                ev("agent.message", text="X"),
                ev("agent.message", text="Y"),
            ],
            [
                {"kind": "assistant", "message_id": None, "text": "X"},
                {"kind": "assistant", "message_id": None, "text": "Y"},
            ],
            id="id-less-messages-stay-separate",
        ),
        pytest.param(
            [ev("agent.thinking", text="hmm"), ev("error", message="boom", detail="trace")],
            [{"kind": "thinking", "text": "hmm"}, {"kind": "error", "message": "boom"}],
            id="thinking-and-error",
        ),
        pytest.param(
            [ev("turn.completed", turn=1, stop_reason="end_turn", result="ok", duration_ms=5)],
            [{"kind": "turn", "turn": 1, "stop_reason": "end_turn", "result": "ok"}],
            id="turn-completed",
        ),
        pytest.param(
            [ev("made.up", text="?"), ev("agent.message"), {"type": "error"}],
            [
                {"kind": "assistant", "message_id": None, "text": ""},
                {"kind": "error", "message": ""},
            ],
            id="unknown-type-ignored-missing-keys-tolerated",
        ),
    ],
)
def test_transcript_messages(events: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert strip_ts(fold.transcript(events)) == expected


def tool_item(**changes: Any) -> dict[str, Any]:
    base = {
        "kind": "tool",
        "call_id": "c1",
        "tool": "Bash",
        "tool_kind": "bash",
        "title": "Bash",
        "input": {"command": "ls"},
        "ok": None,
        "output": None,
        "error": None,
        "exit_code": None,
        "duration_ms": None,
        "status": "running",
    }
    return base | changes


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        pytest.param([call("c1", command="ls")], tool_item(), id="running"),
        pytest.param(
            [call("c1", command="ls"), result("c1", output="a\n", exit_code=0, duration_ms=7)],
            tool_item(ok=True, output="a\n", exit_code=0, duration_ms=7, status="done"),
            id="ok-result-completes",
        ),
        pytest.param(
            [call("c1", command="ls"), result("c1", ok=False, error="nope", exit_code=2)],
            tool_item(ok=False, error="nope", exit_code=2, status="failed"),
            id="failed-result",
        ),
        pytest.param(
            [call("c1", command="ls"), ev("tool.result", call_id="c1", exit_code=1)],
            tool_item(ok=False, exit_code=1, status="failed"),
            id="missing-ok-read-from-exit-code",
        ),
        pytest.param(
            [call("c1", command="ls"), result("other", output="x")], tool_item(), id="unmatched"
        ),
    ],
)
def test_transcript_tool_items(events: list[dict[str, Any]], expected: dict[str, Any]) -> None:
    assert strip_ts(fold.transcript(events)) == [expected]


def test_transcript_tool_item_keeps_its_place_and_call_ts() -> None:
    events = [call("c1", command="ls"), ev("agent.message", message_id="m", text="hi")]
    events.append(result("c1", output="x"))
    items = fold.transcript(events)
    assert [item["kind"] for item in items] == ["tool", "assistant"]
    assert items[0]["ts"] == events[0]["ts"]
    assert items[0]["status"] == "done"


def test_transcript_approval_updated_by_id() -> None:
    approval = {
        "id": "apr_1",
        "tool": "Bash",
        "kind": "tool",
        "input": {"command": "rm"},
        "title": "Run rm",
        "status": "pending",
    }
    events = [
        ev("approval.requested", approval=approval),
        ev("approval.requested", approval=approval | {"id": "apr_2"}),
        ev(
            "approval.resolved",
            approval_id="apr_1",
            decision="rejected",
            decided_by="ann",
            reason="no",
        ),
    ]
    assert strip_ts(fold.transcript(events)) == [
        {
            "kind": "approval",
            "approval_id": "apr_1",
            "tool": "Bash",
            "approval_kind": "tool",
            "title": "Run rm",
            "input": {"command": "rm"},
            "status": "rejected",
            "decided_by": "ann",
            "reason": "no",
        },
        {
            "kind": "approval",
            "approval_id": "apr_2",
            "tool": "Bash",
            "approval_kind": "tool",
            "title": "Run rm",
            "input": {"command": "rm"},
            "status": "pending",
            "decided_by": None,
            "reason": None,
        },
    ]


# --- timeline -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        pytest.param(
            ev("run.status", **{"from": "queued", "to": "running", "reason": None}),
            {"type": "status", "from": "queued", "to": "running", "reason": None},
            id="status",
        ),
        (
            ev("turn.started", turn=1, prompt="x"),
            {"type": "turn.started", "summary": "Turn 1 started"},
        ),
        (
            ev("turn.completed", turn=1, stop_reason="end_turn"),
            {"type": "turn.completed", "summary": "Turn 1 ended: end_turn"},
        ),
        (
            ev("approval.requested", approval={"id": "a", "title": "Run rm"}),
            {"type": "approval.requested", "summary": "Approval requested: Run rm"},
        ),
        (
            ev("approval.resolved", approval_id="a", decision="approved", decided_by="ann"),
            {"type": "approval.resolved", "summary": "Approval approved by ann"},
        ),
        (
            ev("checkpoint.created", checkpoint={"id": "cp_1", "description": "turn 1"}),
            {"type": "checkpoint.created", "summary": "Checkpoint turn 1"},
        ),
        (
            ev("git.committed", sha="0123456789abcdef"),
            {"type": "git.committed", "summary": "Committed 0123456"},
        ),
        (
            ev("git.merged", target="main", sha="abc", strategy="squash"),
            {"type": "git.merged", "summary": "Merged into main (squash)"},
        ),
        (
            ev("git.pushed", branch="codeyard/7-x", remote="origin"),
            {"type": "git.pushed", "summary": "Pushed codeyard/7-x to origin"},
        ),
        (
            ev("pr.created", url="https://h/pr/3", number=3),
            {"type": "pr.created", "summary": "Pull request #3 https://h/pr/3"},
        ),
        (ev("error", message="x" * 500), {"type": "error", "summary": "x" * 200}),
        (ev("git.committed"), {"type": "git.committed", "summary": "Committed"}),
    ],
)
def test_timeline_entry(event: dict[str, Any], expected: dict[str, Any]) -> None:
    assert fold.timeline([event]) == [{"ts": event["ts"]} | expected]


def test_timeline_skips_everything_else() -> None:
    noise = [ev("agent.message", text="hi"), call("c1", command="ls"), ev("usage"), ev("made.up")]
    assert fold.timeline(noise) == []


# --- tasks --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        pytest.param([], [], id="none"),
        pytest.param(
            [
                ev("task.updated", tasks=[{"content": "a", "status": "pending"}]),
                ev(
                    "task.updated",
                    tasks=[
                        {"content": "a", "status": "completed"},
                        {"content": "b", "status": "in_progress"},
                    ],
                ),
            ],
            [{"content": "a", "status": "completed"}, {"content": "b", "status": "in_progress"}],
            id="latest-wins",
        ),
        pytest.param(
            [ev("task.updated", tasks=[{"content": "a", "status": "pending"}]), ev("task.updated")],
            [{"content": "a", "status": "pending"}],
            id="malformed-update-ignored",
        ),
        pytest.param([ev("task.updated", tasks=[])], [], id="cleared"),
    ],
)
def test_tasks(events: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert fold.tasks(events) == expected


# --- commands -----------------------------------------------------------------------------


def test_commands_pair_calls_with_results() -> None:
    events = [
        call("c1", command="pytest -q"),
        call("r1", tool="Read", kind="read", path="a.py"),
        result("c1", output="1 passed", exit_code=0, duration_ms=900),
        call("c2", command="false"),
        result("c2", ok=False, output="", error="exit 1", exit_code=1, duration_ms=3),
        call("c3", command="sleep 100"),
    ]
    assert strip_ts(fold.commands(events)) == [
        {
            "call_id": "c1",
            "command": "pytest -q",
            "exit_code": 0,
            "duration_ms": 900,
            "output_tail": "1 passed",
        },
        {
            "call_id": "c2",
            "command": "false",
            "exit_code": 1,
            "duration_ms": 3,
            "output_tail": "exit 1",
        },
        {
            "call_id": "c3",
            "command": "sleep 100",
            "exit_code": None,
            "duration_ms": None,
            "output_tail": None,
        },
    ]


def test_commands_output_tail_keeps_the_last_2000_chars() -> None:
    output = "head" + "x" * 2000 + "END"
    events = [call("c1", command="make"), result("c1", output=output, exit_code=0)]
    (entry,) = fold.commands(events)
    assert len(entry["output_tail"]) == 2000
    assert entry["output_tail"] == output[-2000:]
    assert entry["output_tail"].endswith("xEND")


def test_commands_tolerate_odd_input() -> None:
    events = [
        ev("tool.call", call_id="c1", kind="bash", input="echo hi"),
        ev("tool.call", kind="bash"),
        ev("tool.result", output="orphan"),
    ]
    assert strip_ts(fold.commands(events)) == [
        {
            "call_id": "c1",
            "command": "echo hi",
            "exit_code": None,
            "duration_ms": None,
            "output_tail": None,
        },
        {
            "call_id": None,
            "command": "",
            "exit_code": None,
            "duration_ms": None,
            "output_tail": None,
        },
    ]


# --- telemetry ----------------------------------------------------------------------------


def test_telemetry_sums_usage_turns_and_tools() -> None:
    events = [
        ev("turn.started", turn=1, prompt="go"),
        ev("usage", input_tokens=100, output_tokens=20, cache_read_tokens=5, cost_usd=0.1),
        call("c1", command="ls"),
        result("c1", duration_ms=10),
        call("c2", command="false"),
        result("c2", ok=False, error="exit 1", duration_ms=5),
        call("r1", tool="Read", kind="read", path="a"),
        ev("agent.message", message_id="m1", text="done"),
        ev("usage", input_tokens=50, output_tokens=30, cache_write_tokens=7, cost_usd=0.2),
        ev("turn.completed", turn=1, duration_ms=1500, cost_usd=99),
        ev("usage", input_tokens="lots", cost_usd=None),
        ev("turn.completed", turn=2, duration_ms=500),
    ]
    assert fold.telemetry(events) == {
        "usage": {
            "input_tokens": 150,
            "output_tokens": 50,
            "cache_read_tokens": 5,
            "cache_write_tokens": 7,
            "cost_usd": 0.3,
        },
        "turns": 2,
        "tool_calls": 3,
        "tools": {
            "Bash": {"calls": 2, "failures": 1, "duration_ms": 15},
            "Read": {"calls": 1, "failures": 0, "duration_ms": 0},
        },
        "duration_ms": 2000,
        "messages": 1,
        "first_event_at": events[0]["ts"],
        "last_event_at": events[-1]["ts"],
    }


def test_telemetry_of_no_events() -> None:
    assert fold.telemetry([]) == {
        "usage": {
            "input_tokens": 0,
            "output_tokens": 0,
            "cache_read_tokens": 0,
            "cache_write_tokens": 0,
            "cost_usd": 0.0,
        },
        "turns": 0,
        "tool_calls": 0,
        "tools": {},
        "duration_ms": 0,
        "messages": 0,
        "first_event_at": None,
        "last_event_at": None,
    }


# --- summary ------------------------------------------------------------------------------


def test_summary() -> None:
    events = [
        ev("file.changed", path="src/b.py", change="added"),
        ev("file.changed", path="src/a.py", change="modified"),
        ev("file.changed", path="src/b.py", change="modified"),
        ev("file.changed", change="deleted"),
        call("c1", command="ls -la"),
        call("c2", command="uv run pytest -q tests"),
        call("c3", command="npm run test:unit"),
        call("c4", command="make testdata"),
        ev("agent.message", message_id="m1", text="first"),
        ev("agent.message", message_id="m2", text="All done."),
        ev("turn.completed", turn=1),
    ]
    assert fold.summary(events) == {
        "changed_files": [
            {"path": "src/a.py", "change": "modified"},
            {"path": "src/b.py", "change": "modified"},
        ],
        "commands": ["ls -la", "uv run pytest -q tests", "npm run test:unit", "make testdata"],
        "tests_run": ["uv run pytest -q tests", "npm run test:unit"],
        "final_message": "All done.",
        "turns": 1,
    }


@pytest.mark.parametrize(
    "command",
    [
        "pytest",
        "python -m pytest -x",
        "npm test",
        "yarn test",
        "go test ./...",
        "cargo test",
        "make test",
        "make check",
        "./gradlew test",
        "npx vitest run",
        "tox -e py311",
    ],
)
def test_summary_recognizes_test_commands(command: str) -> None:
    assert fold.summary([call("c1", command=command)])["tests_run"] == [command]


@pytest.mark.parametrize("command", ["ls", "git status", "make build", "cat test.txt"])
def test_summary_ignores_other_commands(command: str) -> None:
    assert fold.summary([call("c1", command=command)])["tests_run"] == []


def test_summary_of_no_events() -> None:
    assert fold.summary([]) == {
        "changed_files": [],
        "commands": [],
        "tests_run": [],
        "final_message": None,
        "turns": 0,
    }


def test_malformed_events_are_folded_leniently_but_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = [
        {
            "id": 1,
            "run_id": "run_x",
            "type": "agent.message",
            "data": {"message_id": "m", "text": 5},
        },
        {"id": 2, "run_id": "run_x", "type": "tool.result", "data": {"call_id": "c"}},
        {"id": 3, "run_id": "run_x", "type": "future.thing", "data": {"anything": True}},
        {"id": 4, "run_id": "run_x", "type": "agent.thinking", "data": {"text": "fine"}},
    ]
    assert [(e[0], e[1]) for e in fold.malformed(log)] == [
        (1, "agent.message"),
        (2, "tool.result"),
    ]
    with caplog.at_level(logging.WARNING, logger="codeyard.domain.fold"):
        items = fold.transcript(log)
    assert [i["kind"] for i in items] == ["assistant", "thinking"]  # still renders
    (record,) = caplog.records
    assert "run_x" in record.getMessage() and "2 event(s)" in record.getMessage()
    assert "event 1 agent.message: text" in record.getMessage()


def test_a_well_formed_log_is_folded_without_warnings(caplog: pytest.LogCaptureFixture) -> None:
    log = [
        {
            "id": 1,
            "run_id": "r",
            "type": "agent.message",
            "data": {"message_id": "m", "text": "hi"},
        },
        {
            "id": 2,
            "run_id": "r",
            "type": "run.status",
            "data": {"from": "a", "to": "b", "reason": None},
        },
    ]
    with caplog.at_level(logging.WARNING, logger="codeyard.domain.fold"):
        fold.telemetry(log)
        fold.summary(log)
    assert caplog.records == []
