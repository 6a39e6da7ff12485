"""Recorded Claude Code stream-json replayed through the typed parser and the pure normalizer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from codeyard.agents.base import ModelRetrying, SessionUpdate, TurnEnd, UsageTotal
from codeyard.agents.claude.normalize import Failed, NormalizeState, normalize, tool_kind
from codeyard.agents.claude.stream_json import (
    AssistantMessage,
    ResultMessage,
    SystemInit,
    Unknown,
    UnknownBlock,
    parse,
)
from codeyard.domain.events import NewEvent

#: Claude Code 2.1.330 against the fake model server: thinking, Write, Bash, a denied Bash,
#: a failing Bash, a final answer (paths replaced).
RECORDED = Path(__file__).parent / "data" / "claude_stream_turn.jsonl"
SESSION = "d9a8cb14-ac9a-4bd1-85d9-ae281fd3bd14"


def replay(lines: list[Any], state: NormalizeState | None = None) -> list[Any]:
    state = state or NormalizeState()
    return [item for raw in lines for item in normalize(parse(raw), state)]


def events(items: list[Any], kind: str) -> list[dict[str, Any]]:
    return [i.data for i in items if isinstance(i, NewEvent) and i.type == kind]


def totals(items: list[Any]) -> list[dict[str, Any]]:
    """The turn totals the CLI reported (``UsageTotal``), as usage event data."""
    return [i.usage.data for i in items if isinstance(i, UsageTotal)]


def recorded() -> list[Any]:
    return [json.loads(line) for line in RECORDED.read_text().splitlines()]


def test_recorded_turn_becomes_codeyard_events() -> None:
    items = replay(recorded())
    kinds = [i.type if isinstance(i, NewEvent) else type(i).__name__ for i in items]
    assert kinds == [
        "agent.session",
        "SessionUpdate",
        "usage",  # model message 1 (thinking, text, Write) counted once
        "agent.thinking",
        "agent.message",
        "tool.call",
        "tool.result",
        "usage",
        "tool.call",
        "tool.result",
        "usage",
        "tool.call",
        "tool.result",
        "usage",
        "tool.call",
        "tool.result",
        "usage",
        "agent.message",
        "UsageTotal",
        "SessionUpdate",
        "TurnEnd",
    ]
    session = events(items, "agent.session")[0]
    assert session["session_id"] == SESSION and session["cli_version"] == "2.1.330"
    assert session["model"] == "claude-sonnet-4-5" and "Bash" in session["tools"]
    assert events(items, "agent.thinking") == [{"text": "Plan: write then run."}]
    calls = events(items, "tool.call")
    assert [(c["tool"], c["kind"]) for c in calls] == [
        ("Write", "write"),
        ("Bash", "bash"),
        ("Bash", "bash"),
        ("Bash", "bash"),
    ]
    assert calls[0]["title"] == "Write /work/tree/hello.txt"
    assert calls[1]["title"] == "$ echo out && echo err >&2"
    results = events(items, "tool.result")
    assert [r["call_id"] for r in results] == [c["call_id"] for c in calls]
    assert results[0]["ok"] and "File created successfully" in results[0]["output"]
    assert results[1] == {
        "call_id": calls[1]["call_id"],
        "ok": True,
        "exit_code": 0,
        "output": "out\nerr",
        "error": None,
        "duration_ms": 0,
    }
    assert not results[2]["ok"] and results[2]["error"].startswith("Codeyard policy denied")
    assert not results[3]["ok"] and results[3]["exit_code"] == 3
    # Live: each model message's counts as the CLI wrote them (output as of the message's
    # start: one token), priced by the executor until the result settles them.
    live = events(items, "usage")
    assert [(u["input_tokens"], u["output_tokens"]) for u in live] == [(100, 1)] * 4 + [(200, 1)]
    assert (live[-1]["cache_read_tokens"], live[-1]["cache_write_tokens"]) == (50, 10)
    assert {(u["cost_usd"], u["cost_source"]) for u in live} == {(None, "estimate")}
    # The turn's total is the CLI's own figures since the last result (side calls included).
    assert totals(items) == [
        {
            "input_tokens": 700,
            "output_tokens": 90,
            "cache_read_tokens": 50,
            "cache_write_tokens": 10,
            "cost_usd": pytest.approx(0.0035025),
            "cost_source": None,  # filled by the executor's sink, which prices every usage
            "model": None,
        }
    ]
    updates = [i for i in items if isinstance(i, SessionUpdate)]
    assert [u.session_id for u in updates] == [SESSION, SESSION]
    assert updates[-1].state == {"cost_total": pytest.approx(0.0035025), "tasks": {}}
    assert items[-1] == TurnEnd("end_turn", "Done.")


# Claude Code 2.1.197 (research notes §3.4): two results from one process, cost cumulative,
# no per-result usage block.
def _old_result(total: float, inp: int, out: int) -> dict[str, Any]:
    return {
        "type": "result",
        "subtype": "success",
        "is_error": False,
        "num_turns": 1,
        "result": "Tool said: done.",
        "stop_reason": "end_turn",
        "session_id": "07163e92",
        "total_cost_usd": total,
        "usage": {"input_tokens": inp, "output_tokens": out, "cache_read_input_tokens": 0},
    }


def test_cost_of_older_clis_is_the_difference_of_cumulative_totals() -> None:
    state = NormalizeState()
    first = replay([_old_result(0.0016, 200, 24)], state)
    second = replay([_old_result(0.0024000000000000002, 100, 12)], state)
    assert totals(first)[0]["cost_usd"] == pytest.approx(0.0016)
    usage = totals(second)[0]
    assert usage["cost_usd"] == pytest.approx(0.0008)
    assert (usage["input_tokens"], usage["output_tokens"]) == (100, 12)


def test_resumed_process_that_restored_its_total_is_not_billed_twice() -> None:
    restored = NormalizeState(session_id="s", cost_total=0.0016, resumed=True)
    assert totals(replay([_old_result(0.0024, 100, 12)], restored))[0]["cost_usd"] == pytest.approx(
        0.0008
    )
    fresh_counter = NormalizeState(session_id="s", cost_total=0.0016, resumed=True)
    assert totals(replay([_old_result(0.0005, 100, 12)], fresh_counter))[0][
        "cost_usd"
    ] == pytest.approx(0.0005)


def _stream(event: dict[str, Any], parent: str | None = None) -> dict[str, Any]:
    return {"type": "stream_event", "event": event, "parent_tool_use_id": parent}


def _block_line(msg_id: str, block: dict[str, Any], parent: str | None = None) -> dict[str, Any]:
    usage = {"input_tokens": 100, "cache_read_input_tokens": 5, "output_tokens": 1}
    message = {"id": msg_id, "model": "m", "content": [block], "usage": usage}
    return {"type": "assistant", "message": message, "parent_tool_use_id": parent}


def test_live_usage_counts_each_model_message_once_as_it_grows() -> None:
    """The order Claude Code 2.1 writes with partial messages (seen against the fake model
    server): the message's start, one line per block repeating the start's usage (output: 1),
    then ``message_delta`` with the output so far."""
    start_usage = {"input_tokens": 100, "cache_read_input_tokens": 5, "output_tokens": 1}
    message = {"id": "msg_a", "model": "m", "content": [], "usage": start_usage}
    lines = [
        _stream({"type": "message_start", "message": message}),
        _block_line("msg_a", {"type": "text", "text": "Let me look."}),
        _block_line("msg_a", {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}}),
        _stream({"type": "message_delta", "delta": {}, "usage": {"output_tokens": 40}}),
        # A sub-agent's message: its tokens reach the run with the turn's total.
        _block_line("msg_sub", {"type": "text", "text": "sub"}, parent="toolu_1"),
        _stream({"type": "message_start", "message": {**message, "id": "msg_s"}}, "toolu_1"),
        _block_line("msg_b", {"type": "text", "text": "Done."}),  # no partial messages
    ]
    items = replay(lines)
    live = [
        (u["input_tokens"], u["output_tokens"], u["cache_read_tokens"])
        for u in events(items, "usage")
    ]
    assert live == [(100, 1, 5), (0, 39, 0), (100, 1, 5)]
    state = NormalizeState()
    replay(lines, state)
    assert state.counted["msg_a"]["output_tokens"] == 40
    result = {**_old_result(0.01, 400, 90), "usage": {"input_tokens": 400, "output_tokens": 90}}
    ended = replay([result], state)
    assert [type(i).__name__ for i in ended][:1] == ["UsageTotal"] and not events(ended, "usage")
    assert state.counted == {}  # the next turn's messages start from nothing


def _error_result(subtype: str, result: str | None, errors: list[str] | None = None) -> Any:
    return {
        "type": "result",
        "subtype": subtype,
        "is_error": True,
        "result": result,
        "session_id": "s",
        "total_cost_usd": 0,
        "usage": {},
        "errors": errors or [],
    }


def test_error_results() -> None:
    api_error = replay([_error_result("success", "API Error: Unable to connect to API")])
    assert api_error[-1] == Failed(
        "Claude Code failed the turn: API Error: Unable to connect to API"
    )
    aborted = _error_result("error_during_execution", None, ["aborted_streaming"])
    assert replay([aborted])[-1] == Failed("Claude Code failed the turn: aborted_streaming")
    interrupted = replay([aborted], NormalizeState(interrupting=True))
    assert interrupted[-1] == TurnEnd("interrupted", None)
    assert replay([_error_result("error_max_turns", None)])[-1] == TurnEnd("max_turns", None)


def test_todo_write_updates_the_task_list() -> None:
    todo = {
        "type": "assistant",
        "message": {
            "id": "msg_1",
            "model": "m",
            "content": [
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "TodoWrite",
                    "input": {
                        "todos": [
                            {"content": "Write tests", "status": "completed", "activeForm": "x"},
                            {"content": "Ship", "status": "weird"},
                        ]
                    },
                }
            ],
        },
    }
    items = replay([todo])
    assert events(items, "tool.call")[0]["kind"] == "task"
    assert events(items, "task.updated") == [
        {
            "tasks": [
                {"content": "Write tests", "status": "completed"},
                {"content": "Ship", "status": "pending"},
            ]
        }
    ]


def test_unknown_and_malformed_lines_are_kept_raw_and_ignored() -> None:
    for raw in (
        {"type": "brand_new_kind", "x": 1},
        {"type": "assistant"},
        "not an object",
        {"type": "result"} | {"is_error": "yes"},
    ):
        message = parse(raw)
        assert isinstance(message, Unknown | ResultMessage)
    assert replay([{"type": "brand_new_kind"}, {"type": "system", "subtype": "status"}]) == []
    odd = parse(
        {"type": "assistant", "message": {"id": "m", "content": [{"type": "server_thing"}]}}
    )
    assert isinstance(odd, AssistantMessage) and isinstance(odd.blocks[0], UnknownBlock)
    init = parse({"type": "system", "subtype": "init", "session_id": "s", "tools": "nope"})
    assert isinstance(init, SystemInit) and init.tools == []


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("Bash", "bash"),
        ("Write", "write"),
        ("Edit", "edit"),
        ("MultiEdit", "edit"),
        ("NotebookEdit", "edit"),
        ("Read", "read"),
        ("LS", "read"),
        ("Glob", "search"),
        ("Grep", "search"),
        ("WebFetch", "fetch"),
        ("WebSearch", "fetch"),
        ("mcp__github__create_issue", "mcp"),
        ("Task", "task"),
        ("TodoWrite", "task"),
        ("SomethingNew", "other"),
    ],
)
def test_tool_kinds(name: str, kind: str) -> None:
    assert tool_kind(name) == kind


def _task_call(call_id: str, name: str, tool_input: dict[str, Any]) -> dict[str, Any]:
    block = {"type": "tool_use", "id": call_id, "name": name, "input": tool_input}
    message = {"id": f"msg_{call_id}", "role": "assistant", "content": [block]}
    return {"type": "assistant", "message": message, "session_id": SESSION}


def _task_result(call_id: str, text: str, structured: dict[str, Any]) -> dict[str, Any]:
    block = {"tool_use_id": call_id, "type": "tool_result", "content": text}
    return {
        "type": "user",
        "message": {"role": "user", "content": [block]},
        "session_id": SESSION,
        "tool_use_result": structured,
    }


def test_task_tools_keep_the_whole_list_across_turns() -> None:
    """Claude Code 2.1.330's TaskCreate/TaskUpdate results (recorded shapes) build the list."""
    state = NormalizeState()
    first = replay(
        [
            _task_call("t1", "TaskCreate", {"subject": "Write tests", "description": "unit"}),
            _task_result(
                "t1",
                "Task #1 created successfully: Write tests",
                {"task": {"id": "1", "subject": "Write tests", "description": "unit"}},
            ),
            _task_call("t2", "TaskCreate", {"subject": "Ship it", "description": "release"}),
            _task_result("t2", "Task #2 created", {"task": {"id": "2", "subject": "Ship it"}}),
            _task_call("t3", "TaskUpdate", {"taskId": "1", "status": "in_progress"}),
            _task_result(
                "t3",
                "Updated task #1 status",
                {
                    "success": True,
                    "taskId": "1",
                    "updatedFields": ["status"],
                    "statusChange": {"from": "pending", "to": "in_progress"},
                },
            ),
        ],
        state,
    )
    lists = events(first, "task.updated")
    assert lists[-1]["tasks"] == [
        {"content": "Write tests", "status": "in_progress"},
        {"content": "Ship it", "status": "pending"},
    ]
    assert len(lists) == 3
    # The next turn starts from the persisted list: one update still shows every task.
    resumed = NormalizeState(tasks=state.persisted()["tasks"])
    update = {"success": True, "taskId": "2", "statusChange": {"from": "pending", "to": "deleted"}}
    later = replay(
        [
            _task_call("t4", "TaskUpdate", {"taskId": "2", "status": "deleted"}),
            _task_result("t4", "Updated task #2 status", update),
        ],
        resumed,
    )
    assert events(later, "task.updated")[-1]["tasks"] == [
        {"content": "Write tests", "status": "in_progress"}
    ]


def test_a_failed_task_tool_changes_nothing() -> None:
    state = NormalizeState(tasks={"1": {"content": "Keep", "status": "pending"}})
    failed = _task_result("t9", "No task found with ID 7", {})
    failed["message"]["content"][0]["is_error"] = True
    items = replay([_task_call("t9", "TaskUpdate", {"taskId": "7", "status": "completed"}), failed])
    assert events(items, "task.updated") == []
    assert state.tasks == {"1": {"content": "Keep", "status": "pending"}}


def test_api_retries_are_shown_as_retrying_the_model() -> None:
    """Claude Code 2.1 against a closed port: one ``system/api_retry`` line per attempt (it
    retries ten times, backing off to minutes), which the executor's watchdog counts."""
    line = {
        "type": "system",
        "subtype": "api_retry",
        "attempt": 3,
        "max_retries": 10,
        "retry_delay_ms": 2423,
        "error_status": None,
        "error": "unknown",
        "session_id": "s",
    }
    (item,) = replay([line])
    assert isinstance(item, ModelRetrying)
    assert item.message == "Claude Code could not reach its model API (attempt 3 of 10): unknown"
    assert item.detail == "next try in 2.4 s"
    overloaded = replay([{**line, "error": "overloaded_error", "error_status": 529}])[0]
    assert overloaded.message.endswith("overloaded_error (HTTP 529)")
    assert replay([{**line, "subtype": "status"}]) == []
