"""The one stop sequence every agent turn uses (``codeyard.agents.stopping``, issue 12).

Real child processes stand in for the agent CLIs (a Python child that exits when its input
ends, or one that ignores SIGINT and SIGTERM); the protocol steps are the adapter's callables,
recorded here, because no CLI is needed to check the order, the timings and the escalation.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from codeyard.agents import stopping
from codeyard.agents.process import ProcessGroup, spawn
from codeyard.agents.stopping import TurnStop, stop_turn

pytestmark = pytest.mark.anyio

EXITS_ON_EOF = "import sys; print('ready', flush=True); sys.stdin.read()"
STUBBORN = (
    "import signal, time; "
    "signal.signal(signal.SIGINT, signal.SIG_IGN); signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(60)"
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short timings: the sequence reads them when it runs, as the adapters do."""
    monkeypatch.setattr(stopping, "INTERRUPT_TIMEOUT", 0.3)
    monkeypatch.setattr(stopping, "STOP_GRACE", 0.2)
    monkeypatch.setattr(stopping, "EXIT_GRACE", 0.5)
    monkeypatch.setattr(stopping, "RELEASE_EXTRA", 0.5)
    monkeypatch.setattr(stopping, "REAP_TIMEOUT", 1.0)


@asynccontextmanager
async def agent(code: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, ProcessGroup]]:
    proc, group = await spawn(
        [sys.executable, "-c", code],
        kind="test-agent",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        assert await asyncio.wait_for(proc.stdout.readline(), 30) == b"ready\n"
        yield proc, group
    finally:
        group.kill()
        await asyncio.wait_for(proc.wait(), 5)


def steps(
    proc: asyncio.subprocess.Process, calls: list[str], *, hang: bool = False
) -> dict[str, stopping.Step]:
    """The adapter's part: record each call; ``hang``: the protocol and input never answer."""

    async def interrupt() -> None:
        calls.append("interrupt")
        if hang:
            await asyncio.sleep(30)

    async def release() -> None:
        calls.append("release")
        if hang:
            await asyncio.sleep(30)
        assert proc.stdin is not None
        proc.stdin.close()

    async def reap() -> None:
        calls.append("reap")
        assert proc.stdout is not None
        await proc.stdout.read()
        await proc.wait()

    return {"interrupt": interrupt, "release": release, "reap": reap}


async def test_an_agent_that_exits_when_its_input_ends_needs_no_signal(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []
    async with agent(EXITS_ON_EOF) as (proc, group):
        started = time.monotonic()
        with caplog.at_level(logging.INFO):
            stop = TurnStop("run_1", "Test", group, **steps(proc, calls))
            await stop_turn(stop, interrupted=True)
        assert calls == ["interrupt", "release", "reap"]
        assert proc.returncode == 0  # it left by itself: no signal reached it
        assert group.members() == set()
        assert time.monotonic() - started < stopping.STOP_GRACE + 1
        assert not [r for r in caplog.records if "sending" in r.getMessage()]


async def test_a_stubborn_agent_is_escalated_to_sigkill_with_the_same_timings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Protocol interrupt and input both hang; SIGINT and SIGTERM are ignored: the group is
    killed after the interrupt's timeout and three graces, each step logged with why."""
    calls: list[str] = []
    async with agent(STUBBORN) as (proc, group):
        started = time.monotonic()
        with caplog.at_level(logging.INFO):
            stop = TurnStop("run_2", "Test", group, **steps(proc, calls, hang=True))
            await stop_turn(stop, interrupted=True)
        took = time.monotonic() - started
        assert calls == ["interrupt", "release", "reap"]
        assert proc.returncode == -9
        assert group.members() == set()
        floor = stopping.INTERRUPT_TIMEOUT + 3 * stopping.STOP_GRACE
        assert floor - 0.05 <= took < floor + 3 * stopping.RELEASE_EXTRA
        text = "\n".join(r.getMessage() for r in caplog.records)
        assert "Test did not take the interrupt" in text
        assert "the turn was interrupted; still alive after 0.2s, sending SIGINT" in text
        assert "sending SIGTERM" in text
        assert "SIGTERM was ignored for 0.2s, killing" in text


async def test_a_turn_that_ended_is_not_interrupted_and_gets_the_exit_grace(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[str] = []
    async with agent(STUBBORN) as (proc, group):
        parts = steps(proc, calls)
        started = time.monotonic()
        with caplog.at_level(logging.INFO):
            await stop_turn(TurnStop("run_3", "Test", group, **parts), interrupted=False)
        took = time.monotonic() - started
        assert calls == ["release", "reap"]  # no protocol interrupt after a clean end
        assert proc.returncode == -9
        assert took >= 3 * stopping.EXIT_GRACE - 0.05
        assert "the turn ended; still alive after 0.5s" in caplog.text


async def test_a_second_cancellation_kills_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The caller's own cancellation while the sequence runs (somebody gave up waiting):
    SIGKILL now, not after the remaining graces. Those are long here, so that "at once" has
    seconds of room on a loaded machine and still cannot be the graces running out."""
    monkeypatch.setattr(stopping, "INTERRUPT_TIMEOUT", 30.0)
    monkeypatch.setattr(stopping, "STOP_GRACE", 30.0)
    calls: list[str] = []
    async with agent(STUBBORN) as (proc, group):
        stop = TurnStop("run_4", "Test", group, **steps(proc, calls, hang=True))
        task = asyncio.ensure_future(stop_turn(stop, interrupted=True))
        async with asyncio.timeout(30):
            while calls != ["interrupt"]:  # the sequence runs (its interrupt hangs)
                await asyncio.sleep(0.01)
        started = time.monotonic()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(proc.wait(), 20)
        assert proc.returncode == -9
        assert time.monotonic() - started < 20


async def test_nothing_started_nothing_to_stop() -> None:
    calls: list[str] = []

    async def release() -> None:
        calls.append("release")

    await stop_turn(TurnStop("run_5", "Test", None, release=release), interrupted=True)
    assert calls == ["release"]


def test_every_provider_turn_stops_through_the_one_sequence() -> None:
    """Claude Code, Codex and every ACP agent: no turn class keeps a stop escalation of its
    own (the ``_stop_gently`` copies and their per-provider timeouts are gone)."""
    from codeyard.agents.acp import turn as acp_turn
    from codeyard.agents.claude import turn as claude_turn
    from codeyard.agents.codex import turn as codex_turn

    for module in (claude_turn, codex_turn, acp_turn):
        source = inspect.getsource(module)
        assert "await stop_turn(" in source, module.__name__
        assert "_stop_gently" not in source, module.__name__
        assert ".stop(" not in source.replace("stop_turn(", ""), module.__name__
        for constant in ("INTERRUPT_TIMEOUT =", "STOP_GRACE =", "EXIT_GRACE ="):
            assert constant not in source, (module.__name__, constant)
