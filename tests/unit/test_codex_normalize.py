"""Recorded ``codex app-server`` output replayed through the typed parser and the pure
normalizer, plus the provider's option handling."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from codeyard.agents.base import ModelRetrying, SessionUpdate, TurnEnd
from codeyard.agents.codex import CodexProvider
from codeyard.agents.codex.normalize import (
    Failed,
    NormalizeState,
    normalize,
    session_items,
    tool_request,
    unwrap_shell,
)
from codeyard.agents.codex.protocol import (
    ApprovalRequest,
    ItemCompleted,
    Response,
    TokenUsage,
    TurnCompleted,
    Unknown,
    parse,
)
from codeyard.agents.codex.turn import toml_value
from codeyard.domain.errors import ValidationFailed
from codeyard.domain.events import NewEvent
from codeyard.domain.tools import ToolRequest

#: Codex 0.163 app-server against the fake model server (paths replaced): ``tools`` runs a
#: command and a patch (both approved) around a reasoning summary and two messages; ``decline``
#: has a declined command; ``err`` a model API answering 500; ``slow`` a ``turn/interrupt``.
DATA = Path(__file__).parent / "data"


def recorded(name: str) -> list[Any]:
    return [json.loads(line) for line in (DATA / f"codex_{name}.jsonl").read_text().splitlines()]


def replay(
    name: str, state: NormalizeState | None = None
) -> tuple[list[Any], list[ToolRequest], NormalizeState]:
    """Items and decision requests, fed the way the adapter feeds them."""
    state = state or NormalizeState()
    items: list[Any] = []
    requests: list[ToolRequest] = []
    for raw in recorded(name):
        message = parse(raw)
        if isinstance(message, Response) and message.result and "thread" in message.result:
            items += session_items(message.result, state, "from-version")
        elif isinstance(message, Response) and message.result and "turn" in message.result:
            state.turn_id = message.result["turn"]["id"]
        elif isinstance(message, ApprovalRequest):
            requests.append(tool_request(message, state))
        else:
            items += normalize(message, state)
    return items, requests, state


def events(items: list[Any], kind: str) -> list[dict[str, Any]]:
    return [i.data for i in items if isinstance(i, NewEvent) and i.type == kind]


def test_recorded_turn_becomes_codeyard_events() -> None:
    items, _, state = replay("tools")
    kinds = [i.type if isinstance(i, NewEvent) else type(i).__name__ for i in items]
    assert kinds == [
        "agent.session",
        "SessionUpdate",
        "agent.thinking",
        "agent.delta",
        "agent.message",
        "tool.call",
        "tool.result",
        "usage",
        "SessionUpdate",
        "tool.call",
        "tool.result",
        "usage",
        "SessionUpdate",
        "agent.delta",
        "agent.message",
        "usage",
        "SessionUpdate",
        "TurnEnd",
    ]
    (session,) = events(items, "agent.session")
    assert session["provider"] == "codex" and session["model"] == "gpt-5-codex"
    assert session["cli_version"] == "0.163.0"  # the thread's own, before the fallback
    assert session["session_id"] == state.thread_id and state.thread_id
    assert events(items, "agent.thinking") == [{"text": "Plan: run, then patch."}]
    command, patch = events(items, "tool.call")
    assert command["tool"] == "shell" and command["kind"] == "bash"
    assert command["input"] == {"command": "echo ran > ran.txt && echo ok", "cwd": "<WORKDIR>"}
    assert command["title"] == "$ echo ran > ran.txt && echo ok"
    assert patch["tool"] == "apply_patch" and patch["kind"] == "write"
    assert patch["input"] == {"changes": [{"path": "<WORKDIR>/hello.txt", "kind": "add"}]}
    assert patch["title"] == "Write hello.txt"
    ran, patched = events(items, "tool.result")
    assert ran["call_id"] == command["call_id"] and ran["ok"] is True
    assert ran["exit_code"] == 0 and ran["output"].endswith("ok\n") and ran["duration_ms"] > 0
    assert patched["ok"] is True and patched["output"] == "add <WORKDIR>/hello.txt"
    usages = events(items, "usage")
    assert [(u["input_tokens"], u["output_tokens"], u["cache_read_tokens"]) for u in usages] == [
        (100, 12, 0),
        (100, 12, 0),
        (150, 30, 50),  # Codex reported 200 input tokens, 50 of them cached
    ]
    assert all(u["cost_usd"] is None and u["model"] == "gpt-5-codex" for u in usages)
    assert items[-1] == TurnEnd("end_turn", "All done.")
    last_update = [i for i in items if isinstance(i, SessionUpdate)][-1]
    assert last_update.state == {
        "usage_totals": {
            "input_tokens": 400,
            "cached_input_tokens": 50,
            "cache_write_input_tokens": 0,
            "output_tokens": 54,
        }
    }


def test_approval_requests_become_decision_requests() -> None:
    _, requests, _ = replay("tools")
    command, patch = requests
    assert (command.tool, command.kind) == ("shell", "bash")
    assert command.input["command"] == "echo ran > ran.txt && echo ok"
    assert (patch.tool, patch.kind) == ("apply_patch", "write")
    assert patch.input["changes"] == [{"path": "<WORKDIR>/hello.txt", "kind": "add"}]


def test_an_unannounced_request_still_names_the_command() -> None:
    message = parse(
        {
            "id": 7,
            "method": "item/commandExecution/requestApproval",
            "params": {"itemId": "c1", "command": "/bin/bash -lc 'rm -rf x'", "cwd": "/w"},
        }
    )
    assert isinstance(message, ApprovalRequest) and message.is_command
    request = tool_request(message, NormalizeState())
    assert request == ToolRequest("c1", "shell", "bash", {"command": "rm -rf x", "cwd": "/w"})


def test_a_declined_call_reports_why_codeyard_denied_it() -> None:
    state = NormalizeState()
    state.denied["call_6864cd515b6e4881bbdaf149"] = "Codeyard policy denied this tool call: no."
    items, requests, _ = replay("decline", state)
    (result,) = events(items, "tool.result")
    assert requests[0].call_id == result["call_id"]
    assert result == {
        "call_id": "call_6864cd515b6e4881bbdaf149",
        "ok": False,
        "output": "",
        "error": "Codeyard policy denied this tool call: no.",
        "exit_code": None,
        "duration_ms": 0,
    }
    assert not state.denied  # used once
    assert items[-1] == TurnEnd("end_turn", "ok not")


def test_a_model_api_error_fails_the_turn_with_codex_message() -> None:
    items, _, _ = replay("err")
    assert isinstance(items[-1], Failed)
    assert items[-1].reason.startswith("Codex failed the turn: We")
    assert items[-1].reason.endswith("(internalServerError)")


def test_an_interrupted_turn_ends_as_interrupted() -> None:
    items, _, _ = replay("slow")
    assert items[-1] == TurnEnd("interrupted", None)


def test_an_api_error_body_is_reduced_to_its_message() -> None:
    body = '{"error":{"message":"bad model name","type":"invalid_request_error"}}'
    failed = normalize(TurnCompleted("t", "failed", body, "other"), NormalizeState())
    assert failed == [Failed("Codex failed the turn: bad model name (other)")]
    odd = normalize(TurnCompleted("t", "failed", "{not json", None), NormalizeState())
    assert odd == [Failed("Codex failed the turn: {not json")]


def test_completion_of_another_turn_is_ignored() -> None:
    state = NormalizeState(turn_id="mine")
    other = TurnCompleted("theirs", "completed", None, None)
    assert normalize(other, state) == []
    assert normalize(TurnCompleted("mine", "completed", None, None), state) == [
        TurnEnd("end_turn", None)
    ]


def test_usage_of_a_resumed_thread_counts_only_new_calls() -> None:
    saved = {"usage_totals": {"input_tokens": 300, "output_tokens": 36}}
    state = NormalizeState.restore("thread-1", saved)
    assert state.thread_id == "thread-1"
    assert normalize(TokenUsage(None, 300, 0, 0, 36), state) == []  # history, not new
    items = normalize(TokenUsage(None, 400, 20, 0, 48), state)
    assert events(items, "usage")[0] | {"model": None} == {
        "input_tokens": 80,
        "output_tokens": 12,
        "cache_read_tokens": 20,
        "cache_write_tokens": 0,
        "cost_usd": None,
        "cost_source": None,
        "model": None,
    }
    # A count that went down started over (a new thread): all of it is new.
    again = events(normalize(TokenUsage(None, 50, 0, 0, 5), state), "usage")
    assert (again[0]["input_tokens"], again[0]["output_tokens"]) == (50, 5)


def test_failed_turn_without_error_text_uses_the_last_error_notice() -> None:
    state = NormalizeState()
    retrying = parse(
        {
            "method": "error",
            "params": {
                "error": {"message": "Reconnecting... 1/5", "codexErrorInfo": "other"},
                "willRetry": True,
            },
        }
    )
    assert normalize(retrying, state) == [
        ModelRetrying(message="Codex will retry: Reconnecting... 1/5", detail="other")
    ]
    notice = parse(
        {"method": "error", "params": {"error": {"message": "quota gone"}, "willRetry": False}}
    )
    assert normalize(notice, state) == []
    assert normalize(TurnCompleted("t", "failed", None, None), state) == [
        Failed("Codex failed the turn: quota gone")
    ]


def test_unknown_messages_and_items_are_kept_out() -> None:
    assert isinstance(parse({"method": "some/new/thing", "params": {}}), Unknown)
    assert isinstance(parse([1, 2]), Unknown)
    completed = parse({"method": "item/completed", "params": {"item": {"type": "hologram"}}})
    assert isinstance(completed, ItemCompleted)
    assert normalize(completed, NormalizeState()) == []


@pytest.mark.parametrize(
    ("command", "script"),
    [
        ("/bin/bash -lc 'echo hi > a.txt'", "echo hi > a.txt"),
        ("bash -c 'ls'", "ls"),
        ("/usr/bin/zsh -lc 'git status'", "git status"),
        ("python -c 'print(1)'", "python -c 'print(1)'"),
        ("echo 'unterminated", "echo 'unterminated"),
    ],
)
def test_unwrap_shell(command: str, script: str) -> None:
    assert unwrap_shell(command) == script


def test_config_values_are_written_as_toml() -> None:
    provider = {"name": "Fake", "base_url": "http://h/v1", "request_max_retries": 0}
    assert toml_value(provider) == (
        '{"name" = "Fake", "base_url" = "http://h/v1", "request_max_retries" = 0}'
    )
    assert toml_value([True, 1.5, 'a"b']) == '[true, 1.5, "a\\"b"]'
    with pytest.raises(ValueError, match="cannot write"):
        toml_value(None)


def test_options_are_validated_with_every_problem_named() -> None:
    provider = CodexProvider()
    provider.validate_options({"sandbox": "workspace-write", "config": {"model": "x"}})
    with pytest.raises(ValidationFailed) as caught:
        provider.validate_options(
            {"sandbox": "everything", "approval_policy": "sometimes", "config": {"a": None}}
        )
    text = str(caught.value)
    assert "sandbox must be one of: workspace-write, read-only" in text
    assert "approval_policy must be one of" in text and "'a'" in text


def test_a_missing_binary_is_explained_with_the_fix(tmp_path: Path) -> None:
    provider = CodexProvider(cli_path=str(tmp_path / "no-codex"))
    assert provider.path() == str(tmp_path / "no-codex") and provider.version() is None
    problem = provider.problem()
    assert problem is not None and "cannot run here" in problem
    assert "pip install --force-reinstall openai-codex" in problem
