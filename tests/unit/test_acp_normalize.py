"""The ACP normalizer on transcripts recorded from the real Gemini CLI, OpenCode and Copilot CLI
(tests/clis, against the fake model server): what each agent sent, turned into Codeyard events.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from codeyard.agents.acp.normalize import (
    Failed,
    NormalizeState,
    denied,
    finish,
    normalize,
    permission,
)
from codeyard.agents.acp.permissions import pick as _pick
from codeyard.agents.acp.wire import (
    Chunk,
    PermissionOption,
    Unknown,
    error_text,
    parse_permission,
    parse_prompt_result,
    parse_update,
)
from codeyard.agents.base import TurnEnd
from codeyard.domain.events import NewEvent
from codeyard.domain.tools import ToolRequest

DATA = Path(__file__).parent / "data"
DENIAL = "Codeyard policy denied this tool call: not here."

Item = NewEvent | TurnEnd | Failed


def replay(name: str, allow: list[bool] | None = None) -> tuple[list[Item], list[ToolRequest]]:
    """Every item of a recorded turn; permission requests answered from ``allow`` in order."""
    answers = list(allow or [])
    state = NormalizeState(prefix="t1", error_marker="Error: Failed to get response")
    items: list[Item] = []
    requests: list[ToolRequest] = []
    for line in (DATA / f"acp_{name}.jsonl").read_text().splitlines():
        message: dict[str, Any] = json.loads(line)
        if message.get("method") == "session/update":
            items += normalize(parse_update(message["params"]), state)
        elif message.get("method") == "session/request_permission":
            request = parse_permission(message["params"])
            assert request is not None
            events, decide = permission(request, state)
            items += events
            requests.append(decide)
            if not answers.pop(0):
                denied(decide.call_id, DENIAL, state)
        else:
            items += finish(parse_prompt_result(message["result"]), state)
    assert answers == [], "every recorded permission request was answered"
    return items, requests


def of(items: list[Item], kind: str) -> list[dict[str, Any]]:
    return [i.data for i in items if isinstance(i, NewEvent) and i.type == kind]


def types(items: list[Item]) -> list[str]:
    return [i.type for i in items if isinstance(i, NewEvent) and i.type != "agent.delta"]


def test_gemini_turn_announces_the_call_from_its_permission_request() -> None:
    items, (request,) = replay("gemini", [True])
    assert types(items) == [
        "agent.thinking",
        "agent.message",
        "tool.call",
        "tool.result",
        "agent.message",
        "usage",
    ]
    # Gemini CLI sends no rawInput: the shell call's title is its command line.
    command = "echo ran > ran.txt && echo ok"
    assert (request.tool, request.kind, request.input) == ("execute", "bash", {"command": command})
    (call,) = of(items, "tool.call")
    assert call["call_id"] == request.call_id and call["title"] == f"$ {command}"
    (result,) = of(items, "tool.result")
    assert result["ok"] is True and result["call_id"] == request.call_id
    assert "Plan it." in of(items, "agent.thinking")[0]["text"]
    usage = of(items, "usage")[0]
    assert (usage["input_tokens"], usage["output_tokens"]) == (400, 52)
    assert usage["model"] == "gemini-2.5-pro" and usage["cost_usd"] is None, "priced by Codeyard"
    end = items[-1]
    assert isinstance(end, TurnEnd) and (end.stop_reason, end.result) == (
        "end_turn",
        "All done ALPHA.",
    )


def test_deltas_add_up_to_each_message_and_ids_tie_them_together() -> None:
    items, _ = replay("copilot", [True])
    messages = of(items, "agent.message")
    for message in messages:
        deltas = [
            d["text"] for d in of(items, "agent.delta") if d["message_id"] == message["message_id"]
        ]
        assert "".join(deltas) == message["text"]
    assert [m["message_id"] for m in messages] == ["t1-m1", "t1-m2"]
    # A message ends where the tool call begins: the call comes after it, in order.
    kinds = types(items)
    assert kinds.index("agent.message") < kinds.index("tool.call")


def test_opencode_fills_a_call_in_over_several_updates_and_it_is_announced_once() -> None:
    items, (request,) = replay("opencode", [True])
    (call,) = of(items, "tool.call")
    assert call["input"]["command"] == "echo ran > ran.txt && echo ok"
    assert request.input["command"] == call["input"]["command"]
    (result,) = of(items, "tool.result")
    assert result["ok"] is True and "ok" in result["output"] and result["exit_code"] == 0
    # OpenCode names its messages; those ids are kept.
    assert of(items, "agent.message")[-1]["message_id"].startswith("msg_")
    usage = of(items, "usage")[0]
    assert (usage["input_tokens"], usage["output_tokens"]) == (300, 40)


def test_copilot_exit_code_and_cache_counts() -> None:
    items, _ = replay("copilot", [True])
    (result,) = of(items, "tool.result")
    assert result["exit_code"] == 0 and result["output"].startswith("ok\n")
    usage = of(items, "usage")[0]
    assert usage == {
        "input_tokens": 400,
        "output_tokens": 52,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "cost_usd": None,
        "cost_source": None,
        "model": None,
    }


def test_a_denied_gemini_call_gets_a_result_with_the_reason() -> None:
    # Gemini CLI reports nothing for a rejected call: Codeyard's reason stands in.
    items, requests = replay("gemini_ask", [True, False])
    assert [r.input["command"] for r in requests] == [
        "echo yes > approved.txt",
        "echo no > rejected.txt",
    ]
    results = of(items, "tool.result")
    assert [(r["call_id"], r["ok"]) for r in results] == [
        (requests[0].call_id, True),
        (requests[1].call_id, False),
    ]
    assert results[1]["error"] == DENIAL


@pytest.mark.parametrize(
    ("name", "agent_words"),
    [
        ("opencode_ask", "The user rejected permission to use this specific tool call."),
        ("copilot_ask", "The user rejected this tool call."),
    ],
)
def test_a_denied_call_reports_codeyard_reason_and_the_agent_words(
    name: str, agent_words: str
) -> None:
    items, _ = replay(name, [True, False])
    results = of(items, "tool.result")
    assert [r["ok"] for r in results] == [True, False]
    assert results[1]["error"] == f"{DENIAL} ({agent_words})"
    assert len(of(items, "tool.call")) == 2


def test_copilot_model_failure_reported_as_text_fails_the_turn() -> None:
    items, _ = replay("copilot_model_error")
    failure = items[-1]
    assert isinstance(failure, Failed)
    assert "Last error: 500 Backend exploded XYZ" in failure.reason
    assert not failure.reason.startswith("Error:")
    assert not any(isinstance(i, TurnEnd) for i in items)


def test_text_that_only_mentions_an_error_does_not_fail_the_turn() -> None:
    state = NormalizeState(error_marker="Error: Failed to get response")
    normalize(Chunk(False, "The log said: Error: Failed to get response"), state)
    items = finish(parse_prompt_result({"stopReason": "end_turn"}), state)
    assert isinstance(items[-1], TurnEnd)


def test_plans_become_task_updates_and_unknown_updates_are_kept_typed() -> None:
    state = NormalizeState()
    plan = {
        "update": {
            "sessionUpdate": "plan",
            "entries": [
                {"content": "Read", "priority": "high", "status": "completed"},
                {"content": "Write", "priority": "low", "status": "weird"},
            ],
        }
    }
    (event,) = normalize(parse_update(plan), state)
    assert event.type == "task.updated"
    assert event.data["tasks"] == [
        {"content": "Read", "status": "completed"},
        {"content": "Write", "status": "pending"},
    ]
    odd = parse_update({"update": {"sessionUpdate": "something_new", "x": 1}})
    assert isinstance(odd, Unknown) and odd.kind == "something_new"
    assert normalize(odd, state) == []
    assert isinstance(parse_update("garbage"), Unknown)


def test_options_are_picked_by_kind_not_by_id() -> None:
    options = [
        PermissionOption("proceed_always", "allow_always", "Always"),
        PermissionOption("proceed_once", "allow_once", "Allow"),
        PermissionOption("cancel", "reject_once", "Reject"),
    ]
    assert _pick(options, True)["outcome"] == {"outcome": "selected", "optionId": "proceed_once"}
    assert _pick(options, False)["outcome"]["optionId"] == "cancel"
    assert _pick(options[:1], False) == {"outcome": {"outcome": "cancelled"}}


def test_error_text_unwraps_api_error_bodies() -> None:
    body = {"error": {"code": 500, "message": "Backend exploded XYZ", "status": "INTERNAL"}}
    assert error_text(json.dumps(body)) == "Backend exploded XYZ"
    assert error_text("Internal error: Backend exploded XYZ") == (
        "Internal error: Backend exploded XYZ"
    )
    assert error_text('{"unexpected": 1}') == '{"unexpected": 1}'


def test_qwen_usage_comes_on_empty_chunks_and_is_summed_over_the_turn() -> None:
    """Qwen Code reports each model call's tokens as ``_meta.usage`` on an empty message chunk
    (its ``session/prompt`` answer has none): summed, and no empty message is made of them."""
    state = NormalizeState(prefix="t1")

    def chunk(text: str, **meta: Any) -> dict[str, Any]:
        update = {"sessionUpdate": "agent_message_chunk", "content": {"type": "text", "text": text}}
        return {"sessionId": "s", "update": {**update, **({"_meta": meta} if meta else {})}}

    counts = {"inputTokens": 100, "outputTokens": 12, "totalTokens": 112}
    items: list[Item] = []
    for params in (
        chunk("Running."),
        chunk("", usage=counts),
        chunk("Done."),
        chunk("", usage=counts),
    ):
        items += normalize(parse_update(params), state)
    items += finish(parse_prompt_result({"stopReason": "end_turn"}), state)
    assert [m["text"] for m in of(items, "agent.message")] == ["Running.Done."]
    (usage,) = of(items, "usage")
    assert (usage["input_tokens"], usage["output_tokens"]) == (200, 24)
    assert isinstance(items[-1], TurnEnd) and items[-1].result == "Running.Done."


def test_codex_adapter_exit_code_and_output_come_from_its_raw_output() -> None:
    state = NormalizeState(prefix="t1")
    raw = {"stdout": "ok\n", "stderr": "", "aggregated_output": "ok\n", "exit_code": 0}
    start = {"sessionUpdate": "tool_call", "toolCallId": "c1", "kind": "execute", "title": "x"}
    done = {"sessionUpdate": "tool_call_update", "toolCallId": "c1", "status": "completed"}
    normalize(parse_update({"sessionId": "s", "update": start}), state)
    items = normalize(parse_update({"sessionId": "s", "update": {**done, "rawOutput": raw}}), state)
    (result,) = of(list(items), "tool.result")
    assert result["ok"] is True and result["output"] == "ok\n" and result["exit_code"] == 0
