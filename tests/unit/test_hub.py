"""The hub never waits for a subscriber: a slow one is dropped, the others carry on."""

from __future__ import annotations

import asyncio

import pytest

from codeyard.domain.events import StoredEvent
from codeyard.events.hub import EventFilter, Hub, SubscriberDropped

pytestmark = pytest.mark.anyio


def ev(
    i: int, run: str = "run_a", type_: str = "agent.message", project: str = "prj_a"
) -> StoredEvent:
    return StoredEvent(i, run, project, i, type_, "2026-11-22T00:00:00.000Z", "{}")


async def test_fan_out_by_run_project_and_type() -> None:
    hub = Hub()
    by_run = hub.subscribe(EventFilter(run_id="run_a"))
    by_type = hub.subscribe(EventFilter(types=frozenset({"run.status"})))
    by_project = hub.subscribe(EventFilter(project_id="prj_b"))
    hub.publish([ev(1), ev(2, "run_b", "run.status", "prj_b"), ev(3)])
    assert [e.id for e in await by_run.next_batch()] == [1, 3]
    assert [e.id for e in await by_type.next_batch()] == [2]
    assert [e.id for e in await by_project.next_batch()] == [2]


async def test_slow_subscriber_is_dropped_without_affecting_others() -> None:
    hub = Hub(max_pending=5)
    slow = hub.subscribe(EventFilter(run_id="run_a"))
    fast = hub.subscribe(EventFilter(run_id="run_a"))
    for i in range(1, 4):
        hub.publish([ev(i)])
        assert [e.id for e in await fast.next_batch()] == [i]
    hub.publish([ev(i) for i in range(4, 8)])  # slow now holds 7 > 5
    assert slow.dropped and hub.dropped_total == 1
    with pytest.raises(SubscriberDropped):
        await slow.next_batch()
    assert [e.id for e in await fast.next_batch()] == [4, 5, 6, 7]
    assert hub.subscriber_count == 1


async def test_unsubscribe_stops_delivery() -> None:
    hub = Hub()
    sub = hub.subscribe(EventFilter())
    sub.close()
    hub.publish([ev(1)])
    assert hub.subscriber_count == 0 and sub.drain() == []


async def test_a_waiting_reader_wakes_on_events_and_on_a_drop_and_survives_a_timeout() -> None:
    hub = Hub(max_pending=2)
    sub = hub.subscribe(EventFilter(run_id="run_a"))
    reader = asyncio.create_task(sub.next_batch())
    await asyncio.sleep(0)
    hub.publish([ev(1)])
    assert [e.id for e in await reader] == [1]
    # A reader that gave up (wait_for's timeout) leaves the subscription usable.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(sub.next_batch(), 0.01)
    reader = asyncio.create_task(sub.next_batch())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="already waiting"):
        await sub.next_batch()  # one reader at a time
    hub.publish([ev(2), ev(3), ev(4)])  # over max_pending: dropped, and the reader wakes
    with pytest.raises(SubscriberDropped):
        await reader


async def test_followers_of_types_get_their_events_in_order_without_a_match_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Subscriptions to some types of every run are offered the events of those types, in
    order, without every event being matched against every such filter; a project filter
    still is; a closed or dropped one is offered nothing more."""
    hub = Hub(max_pending=3)
    both = hub.subscribe(EventFilter(types=frozenset({"run.status", "error"})))
    status = hub.subscribe(EventFilter(types=frozenset({"run.status"})))
    in_project = hub.subscribe(EventFilter(project_id="prj_b", types=frozenset({"error"})))
    closed = hub.subscribe(EventFilter(types=frozenset({"error"})))
    closed.close()
    matched: list[int] = []
    matches = EventFilter.matches

    def counted(self: EventFilter, event: StoredEvent) -> bool:
        matched.append(event.id)
        return matches(self, event)

    monkeypatch.setattr(EventFilter, "matches", counted)
    events = [
        ev(1, type_="error"),
        ev(2),
        ev(3, type_="run.status"),
        ev(4, "run_b", "error", "prj_b"),
    ]
    hub.publish(events)
    assert [e.id for e in await both.next_batch()] == [1, 3, 4]
    assert [e.id for e in await status.next_batch()] == [3]
    assert [e.id for e in await in_project.next_batch()] == [4]
    assert closed.drain() == []
    assert matched == [1, 2, 3, 4]  # the project filter's only
    hub.publish([ev(i, type_="run.status") for i in range(5, 9)])  # 4 > 3: both dropped
    assert both.dropped and status.dropped
    hub.publish([ev(9, type_="run.status")])
    assert hub.subscriber_count == 1 and hub._by_type == {}
