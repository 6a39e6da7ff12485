"""The model watchdog: only retry notices start its clock, any progress stops it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from codeyard.agents.base import AdapterItem, ModelRetrying, TurnEnd
from codeyard.domain.events import AgentMessage, ErrorEvent
from codeyard.executor.watchdog import ModelUnreachable, ModelWatchdog

pytestmark = pytest.mark.anyio


async def items(script: Sequence[tuple[float, AdapterItem]]) -> AsyncIterator[AdapterItem]:
    """Each item after its delay, like an adapter reading a CLI."""
    for delay, item in script:
        await asyncio.sleep(delay)
        yield item


async def drive(limit: float, script: Sequence[tuple[float, AdapterItem]]) -> list[AdapterItem]:
    seen: list[AdapterItem] = []
    async with ModelWatchdog(limit) as watchdog:
        async for item in items(script):
            watchdog.observe(item)
            seen.append(item)
    return seen


def retry(n: int) -> ModelRetrying:
    return ModelRetrying(message=f"Reconnecting... {n}/5", detail=None)


def said(text: str) -> AgentMessage:
    return AgentMessage(message_id="m", text=text)


async def test_retrying_past_the_limit_fails_with_the_last_message() -> None:
    with pytest.raises(ModelUnreachable, match=r"for 0\.2 s; the agent said: Reconnecting... 3/5"):
        await drive(0.2, [(0, retry(1)), (0.05, retry(2)), (0.05, retry(3)), (5, said("late"))])


async def test_progress_stops_the_clock() -> None:
    # The limit is far from the progress (0.9 s): a loaded machine's late wake-up runs the
    # limit's timer before the item's task, and 0.1 s of room was within reach.
    script = [(0, retry(1)), (0.1, said("back")), (1.5, said("slow but fine")), (0, TurnEnd("x"))]
    assert len(await drive(1.0, script)) == 4


async def test_plain_errors_and_slow_steps_do_not_start_it() -> None:
    plain = ErrorEvent(message="a tool failed", detail=None)
    assert len(await drive(0.1, [(0, plain), (0.3, said("done"))])) == 2


async def test_a_new_retry_streak_gets_the_whole_limit_again() -> None:
    # Two streaks of 0.6 s under a limit of 1 s (together longer): 0.4 s of room each, not
    # the 0.05 s a loaded machine's late wake-up overran.
    script = [(0, retry(1)), (0.6, said("ok")), (0, retry(1)), (0.6, said("ok again"))]
    assert len(await drive(1.0, script)) == 4
