"""The server's own hub followers (ticket follower, after-turn checks, pushes to a pull request,
landings, terminal clean-up) read through ``events.stream.follow_types``: what went by while a
subscription was dropped is read back from the log, each event handled once, in order.

Real servers (SQLite and PostgreSQL), the real writer and hub. The gap is made the way
PostgreSQL makes one: events are committed, the hub never hands them over (a lost ``NOTIFY``),
then the subscription is dropped (``LISTEN`` reconnected).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, cast

import pytest

from codeyard.domain import events as ev
from codeyard.domain.events import StoredEvent
from codeyard.events.hub import Subscription
from codeyard.services import checks, managed_docs, pr_sync, terminals
from codeyard.services.context import Services
from codeyard.terminals.manager import TerminalManager
from codeyard.tickets.follower import follow_runs
from tests.conftest import Api
from tests.integration.test_consumers import draft, until

pytestmark = pytest.mark.anyio

Follower = Callable[[Services, list[str]], Coroutine[Any, Any, None]]


async def _tickets(svc: Services, handled: list[str]) -> None:
    async def on_status(svc: Services, run_id: str) -> None:
        handled.append(run_id)

    await follow_runs(svc, on_status)


async def _checks(svc: Services, handled: list[str]) -> None:
    async def act(svc: Services, run_id: str, event_id: int) -> None:
        handled.append(run_id)

    await checks.follow_turns(svc, act)


async def _pushes(svc: Services, handled: list[str]) -> None:
    async def act(svc: Services, run_id: str, event_id: int) -> None:
        handled.append(run_id)

    await pr_sync.follow_turns(svc, act)


async def _landings(svc: Services, handled: list[str]) -> None:
    async def on_landing(svc: Services, run_id: str) -> None:
        handled.append(run_id)

    await managed_docs.follow_landings(svc, on_landing)


async def _terminals(svc: Services, handled: list[str]) -> None:
    class Closer:  # stands in for the terminal manager: records whose shells it closes
        async def close_for_run(self, run_id: str, reason: str) -> int:
            handled.append(run_id)
            return 0

    await terminals.follow_runs(svc, cast(TerminalManager, Closer()))


def _turn_ended() -> ev.NewEvent:
    return ev.RunStatusChanged.model_validate({"from": "running", "to": "review"})


def _completed() -> ev.NewEvent:
    return ev.RunStatusChanged.model_validate({"from": "review", "to": "completed"})


def _merged() -> ev.NewEvent:
    return ev.GitMerged(
        repo_id="repo", target="main", sha="0" * 40, strategy="merge", fast_forward=False
    )


CASES: dict[str, tuple[Follower, Callable[[], ev.NewEvent]]] = {
    "tickets": (_tickets, _turn_ended),
    "checks": (_checks, _turn_ended),
    "pr_push": (_pushes, _turn_ended),
    "landings": (_landings, _merged),
    "terminals": (_terminals, _completed),
}


@pytest.mark.parametrize("name", sorted(CASES))
async def test_a_follower_handles_what_its_dropped_subscription_missed(
    api: Api, git_repo: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    follower, event = CASES[name]
    svc = api.services
    runs = [await draft(api, git_repo) for _ in range(5)]
    hidden = set(runs[1:4])
    handled: list[str] = []
    before = set(svc.hub._global)
    task = asyncio.create_task(follower(svc, handled))
    try:
        await until(lambda: len(svc.hub._global - before) == 1)
        (sub,) = svc.hub._global - before
        await svc.writer.append(runs[0], [event()])
        await until(lambda: handled == runs[:1])

        offer = Subscription._offer

        def lost(self: Subscription, events: list[StoredEvent]) -> None:
            offer(self, [e for e in events if e.run_id not in hidden])

        monkeypatch.setattr(Subscription, "_offer", lost)  # the hub never hears of these ...
        for run_id in runs[1:4]:
            await svc.writer.append(run_id, [event()])
        sub._drop()  # ... and then the subscription is dropped
        await svc.writer.append(runs[4], [event()])
        await until(lambda: runs[4] in handled)
        await asyncio.sleep(0.2)  # nothing comes twice
        assert handled == runs
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
