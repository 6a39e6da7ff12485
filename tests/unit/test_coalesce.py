"""Delta coalescing keeps order and text exactly, and bounds how long text waits."""

from __future__ import annotations

from codeyard.domain.coalesce import DeltaCoalescer
from codeyard.domain.events import AgentDelta, ToolCall


def delta(text: str, message_id: str = "m1") -> AgentDelta:
    return AgentDelta(message_id=message_id, text=text)


def test_deltas_of_one_message_merge_until_another_event() -> None:
    c = DeltaCoalescer(window=10)
    assert c.push(delta("Hel"), 0.0) == [] and c.push(delta("lo"), 0.01) == []
    call = ToolCall(call_id="c", tool="Bash", kind="bash", title="$ ls", input={})
    out = c.push(call, 0.02)
    assert [(e.type, e.data.get("text")) for e in out] == [
        ("agent.delta", "Hello"),
        ("tool.call", None),
    ]
    assert c.take() == []


def test_a_new_message_flushes_the_previous_one() -> None:
    c = DeltaCoalescer(window=10)
    c.push(delta("a", "m1"), 0.0)
    out = c.push(delta("b", "m2"), 0.01)
    assert [(e.data["message_id"], e.data["text"]) for e in out] == [("m1", "a")]
    assert [(e.data["message_id"], e.data["text"]) for e in c.take()] == [("m2", "b")]


def test_window_bounds_the_wait() -> None:
    c = DeltaCoalescer(window=0.05)
    assert c.push(delta("a"), 0.0) == []
    assert c.push(delta("b"), 0.02) == []
    assert [e.data["text"] for e in c.push(delta("c"), 0.06)] == ["abc"]
    assert c.take() == []


def test_serialized_once_with_merged_text() -> None:
    c = DeltaCoalescer(window=10)
    for part in ["x" * 3, "ü", "z"]:
        c.push(delta(part), 0.0)
    (merged,) = c.take()
    assert merged.data_json == '{"message_id":"m1","text":"xxxüz"}'
