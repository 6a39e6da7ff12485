"""A turn's sink commits a tool's result together with the files it changed (real git).

Failover's notice names the files a cut-off attempt changed, from the ``file.changed`` events
after its last ``tool.result``: a host lost between the two would leave a result whose changes
nobody recorded. The writer here is a recording stand-in (this test is about what the sink
hands it, in which batches), the worktree and its snapshots are real.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import pytest

from codeyard.agents.base import RawOutput, SessionUpdate
from codeyard.domain.events import AgentDelta, AgentMessage, NewEvent, ToolCall, Usage, tool_result
from codeyard.executor import sink as sink_module
from codeyard.executor.changes import ChangeTracker
from codeyard.executor.sink import TurnSink
from codeyard.store.writer import Writer

pytestmark = pytest.mark.anyio


class _Batches:
    """What a writer was handed, one list per append (each append commits in one batch)."""

    def __init__(self) -> None:
        self.batches: list[tuple[list[str], dict[str, Any]]] = []

    async def append(
        self, run_id: str, events: Sequence[NewEvent], run_values: dict[str, Any] | None = None
    ) -> list[Any]:
        self.batches.append(([e.type for e in events], dict(run_values or {})))
        return []


class _SlowTracker(ChangeTracker):
    """Looks at the worktree as slowly as a loaded host does: longer than the flush tick."""

    async def after_tool(self) -> tuple[list[NewEvent], dict[str, int] | None]:
        await asyncio.sleep(0.3)
        return await super().after_tool()


def _repo(path: Path) -> str:
    path.mkdir()
    (path / "a.txt").write_text("a\n")
    for args in (
        ["init", "-q"],
        ["add", "."],
        ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base"],
    ):
        subprocess.run(["git", *args], cwd=path, check=True, capture_output=True)
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=path, check=True, capture_output=True, text=True
    ).stdout.strip()


def _slow_sink(tmp_path: Path) -> tuple[Path, _Batches, TurnSink]:
    """A worktree, the writer stand-in, and a sink on both that looks at changes slowly."""
    worktree = tmp_path / "wt"
    base = _repo(worktree)
    writer = _Batches()
    tracker = _SlowTracker({"main": str(worktree)}, {"main": base})
    return (
        worktree,
        writer,
        TurnSink(cast(Writer, writer), "run_1", {}, tmp_path / "log.txt", tracker),
    )


async def test_a_tool_result_commits_with_the_files_it_changed_even_when_the_look_is_slow(
    tmp_path: Path,
) -> None:
    worktree, writer, sink = _slow_sink(tmp_path)
    async with sink:
        await sink.put(ToolCall(call_id="c1", tool="Bash", kind="bash", title="t", input={}))
        await sink.baseline()  # what the tool call's decision waits for
        (worktree / "cut.txt").write_text("cut\n")
        await sink.put(tool_result("c1", ok=True, output="done"))
        await asyncio.sleep(0.2)  # several flush ticks: what is held is on its way
    with_result = [b for b in writer.batches if "tool.result" in b[0]]
    assert len(with_result) == 1, writer.batches
    types, values = with_result[0]
    assert types[types.index("tool.result") + 1 :] == ["file.changed"], writer.batches
    assert values["diff_stats"] == {"files": 1, "insertions": 1, "deletions": 0}


async def test_the_agent_does_not_wait_for_the_baseline_its_first_tool_call_does(
    tmp_path: Path,
) -> None:
    """Entering the sink (what the agent's spawn follows) only begins the baseline snapshot;
    the tool call's decision waits for it, so the tool's changes are reported, not folded in."""
    worktree = tmp_path / "wt"
    base = _repo(worktree)
    writer = _Batches()
    tracker = ChangeTracker({"main": str(worktree)}, {"main": base})
    sink = TurnSink(cast(Writer, writer), "run_1", {}, tmp_path / "log.txt", tracker)
    async with sink:
        begun = tracker._baseline
        assert begun is not None and not begun.done()  # the spawn would come now
        await sink.put(ToolCall(call_id="c1", tool="Bash", kind="bash", title="t", input={}))
        await sink.baseline()
        assert begun.done()
        (worktree / "new.txt").write_text("new\n")
        await sink.put(tool_result("c1", ok=True, output="done"))
    changed = [b for b in writer.batches if "file.changed" in b[0]]
    assert len(changed) == 1, writer.batches
    assert changed[0][1]["diff_stats"] == {"files": 1, "insertions": 1, "deletions": 0}


async def test_a_turn_cancelled_while_its_changes_are_looked_at_keeps_the_tool_result(
    tmp_path: Path,
) -> None:
    _, writer, sink = _slow_sink(tmp_path)
    async with sink:
        await sink.put(ToolCall(call_id="c1", tool="Bash", kind="bash", title="t", input={}))
        putting = asyncio.ensure_future(sink.put(tool_result("c1", ok=True, output="done")))
        await asyncio.sleep(0.1)  # inside the slow look
        putting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await putting
    assert any("tool.result" in types for types, _ in writer.batches), writer.batches


async def test_the_flush_tick_stores_what_waits_and_sleeps_while_nothing_does(
    tmp_path: Path,
) -> None:
    """An event held for a following item, and streamed text, reach the writer within a tick
    or two without another item; with nothing held the tick does not run at all (an agent that
    thinks for minutes costs no wake-ups every 50 ms)."""
    worktree = tmp_path / "wt"
    base = _repo(worktree)
    writer = _Batches()
    tracker = ChangeTracker({"main": str(worktree)}, {"main": base})
    sink = TurnSink(cast(Writer, writer), "run_1", {}, tmp_path / "log.txt", tracker)
    flushes = 0
    flush = sink.flush

    async def counted() -> None:
        nonlocal flushes
        flushes += 1
        await flush()

    sink.flush = counted  # type: ignore[method-assign]
    async with sink:
        await asyncio.sleep(0.3)
        assert flushes == 0  # nothing waits: no tick
        await sink.put(ToolCall(call_id="c1", tool="Read", kind="read", title="t", input={}))
        await asyncio.sleep(0.15)
        assert [types for types, _ in writer.batches] == [["tool.call"]]
        await sink.put(AgentDelta(message_id="m1", text="Hel"))
        await sink.put(AgentDelta(message_id="m1", text="lo"))
        await asyncio.sleep(0.15)
        assert [types for types, _ in writer.batches][1:] == [["agent.delta"]]
        ticks = flushes
        await asyncio.sleep(0.3)
        assert flushes == ticks  # idle again: no more ticks


async def test_a_burst_of_events_is_one_append_and_a_session_update_takes_it(
    tmp_path: Path,
) -> None:
    """The events an agent reports at once (a message's usage, its text, a tool call) reach
    the writer as one append at the tick, not one each; a SessionUpdate commits what is held
    with its state, in order."""
    worktree = tmp_path / "wt"
    base = _repo(worktree)
    writer = _Batches()
    tracker = ChangeTracker({"main": str(worktree)}, {"main": base})
    sink = TurnSink(cast(Writer, writer), "run_1", {}, tmp_path / "log.txt", tracker, "m")
    async with sink:
        await sink.put(Usage(input_tokens=10, cost_source="estimate"))
        await sink.put(AgentDelta(message_id="m1", text="Hi"))
        await sink.put(AgentMessage(message_id="m1", text="Hi"))
        await sink.put(ToolCall(call_id="c1", tool="Read", kind="read", title="t", input={}))
        assert writer.batches == []  # held until the tick
        await asyncio.sleep(0.15)
        assert [types for types, _ in writer.batches] == [
            ["usage", "agent.delta", "agent.message", "tool.call"]
        ]
        assert writer.batches[0][1]["usage"]["input_tokens"] == 10
        await sink.put(Usage(output_tokens=5, cost_source="estimate"))
        await sink.put(AgentMessage(message_id="m2", text="Done"))
        await sink.put(SessionUpdate("s1", {}))
        types, values = writer.batches[1]
        assert types == ["usage", "agent.message"]
        assert values["session_id"] == "s1" and values["usage"]["output_tokens"] == 5
    assert len(writer.batches) == 2


async def test_raw_output_is_in_the_log_at_once_and_stops_at_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each line of the agent's raw output is in the run's log as soon as it is put (a reader
    of the log follows the turn), one line each; past the size limit the rest is left out; the
    log is closed with the turn and the next turn appends to it."""
    monkeypatch.setattr(sink_module, "LOG_LIMIT_BYTES", 25)
    worktree = tmp_path / "wt"
    base = _repo(worktree)
    log = tmp_path / "log.txt"
    log.write_text("turn 1\n")
    tracker = ChangeTracker({"main": str(worktree)}, {"main": base})
    sink = TurnSink(cast(Writer, _Batches()), "run_1", {}, log, tracker)
    async with sink:
        await sink.put(RawOutput('{"type": "ü"}'))
        assert log.read_text() == 'turn 1\n{"type": "ü"}\n'
        await sink.put(RawOutput("second\n"))  # over 25 bytes from here
        await sink.put(RawOutput("left out"))
    assert log.read_text() == 'turn 1\n{"type": "ü"}\nsecond\n'
    assert sink._log_fd is None
