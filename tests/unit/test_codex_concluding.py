"""Which Codex messages may begin a turn's last words (``normalize.concluding``): the start of
an agent message with no tool call in flight, unless Codex marks it as commentary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from codeyard.agents.codex.normalize import NormalizeState, concluding, normalize
from codeyard.agents.codex.protocol import ItemStarted, MessageItem, parse

DATA = Path(__file__).parent / "data"


def _started_message(phase: str | None) -> Any:
    item = {"type": "agentMessage", "id": "msg_1", "text": "", "phase": phase}
    return parse({"method": "item/started", "params": {"item": item, "turnId": "t"}})


def test_a_recorded_turn_concludes_at_each_message_begun_between_tools() -> None:
    """``tools``: a message, a command, a patch, a message (phases not given: both count);
    the tool calls' own items never do."""
    state = NormalizeState()
    found: list[str] = []
    for line in (DATA / "codex_tools.jsonl").read_text().splitlines():
        message = parse(json.loads(line))
        if concluding(message, state):
            assert isinstance(message, ItemStarted) and isinstance(message.item, MessageItem)
            found.append(message.item.id)
        normalize(message, state)
    assert found == ["msg_1a674289810a48e8bbbca8e0", "msg_d8c821b186a544bbb6f95b41"]


@pytest.mark.parametrize(
    ("phase", "expected"),
    [(None, True), ("final_answer", True), ("commentary", False), ("partial_answer", False)],
)
def test_codex_marking_a_message_as_commentary_is_no_conclusion(
    phase: str | None, expected: bool
) -> None:
    message = _started_message(phase)
    assert isinstance(message, ItemStarted) and isinstance(message.item, MessageItem)
    assert message.item.phase == phase
    assert concluding(message, NormalizeState()) is expected


def test_a_message_begun_while_a_tool_call_runs_is_no_conclusion() -> None:
    state = NormalizeState()
    command = {"type": "commandExecution", "id": "call_1", "command": "sleep 5", "status": ""}
    normalize(parse({"method": "item/started", "params": {"item": command}}), state)
    assert "call_1" in state.calls
    assert not concluding(_started_message(None), state)
