"""In-process fan-out of committed events to subscribers.

Publishing never waits: each subscriber has a bounded buffer, and one that falls behind is
dropped (``dropped`` is set and its reader wakes). Streams recover from a drop by replaying from
the database, so a slow client costs only itself.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from codeyard.domain.events import StoredEvent


@dataclass(frozen=True, slots=True)
class EventFilter:
    run_id: str | None = None
    project_id: str | None = None
    types: frozenset[str] | None = None

    def matches(self, event: StoredEvent) -> bool:
        if self.run_id is not None and event.run_id != self.run_id:
            return False
        if self.project_id is not None and event.project_id != self.project_id:
            return False
        return self.types is None or event.type in self.types


class SubscriberDropped(Exception):
    """The subscriber's buffer overflowed; replay from the last id it saw."""


class Subscription:
    def __init__(self, hub: Hub, flt: EventFilter, max_pending: int) -> None:
        self.filter = flt
        self._hub = hub
        self._max = max_pending
        self._pending: list[StoredEvent] = []
        #: The reader's wait in :meth:`next_batch`, if it is waiting (a bare future: an
        #: ``asyncio.Event`` cost a waiter list and its bookkeeping on every delivered batch).
        self._waiter: asyncio.Future[None] | None = None
        self.dropped = False

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _offer(self, events: list[StoredEvent]) -> None:
        if self.dropped or not events:
            return
        self._pending.extend(events)
        if len(self._pending) > self._max:
            self._drop()
        self._wake()

    def _drop(self) -> None:
        """Stop feeding this subscriber; its reader gets ``SubscriberDropped`` and replays."""
        self.dropped = True
        self._pending = []
        self._hub.dropped_total += 1
        self._hub.unsubscribe(self)
        self._wake()

    async def next_batch(self) -> list[StoredEvent]:
        """Wait for events; returns every event that arrived since the last call. One reader
        at a time (each call takes everything pending)."""
        while not self._pending:
            if self.dropped:
                raise SubscriberDropped
            if self._waiter is not None:
                raise RuntimeError("Another task is already waiting on this subscription")
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        batch, self._pending = self._pending, []
        return batch

    def drain(self) -> list[StoredEvent]:
        """Whatever has arrived, without waiting."""
        if self.dropped:
            raise SubscriberDropped
        batch, self._pending = self._pending, []
        return batch

    def close(self) -> None:
        self._hub.unsubscribe(self)


class Hub:
    def __init__(self, max_pending: int = 10_000) -> None:
        self._max_pending = max_pending
        self._by_run: dict[str, set[Subscription]] = {}
        #: Every subscription not to one run; those following some types of every project's
        #: events (the server's followers and consumers) are also listed by type, so that a
        #: published event is offered to those that follow its type, not matched by all.
        self._global: set[Subscription] = set()
        self._by_type: dict[str, set[Subscription]] = {}
        self._unlisted: set[Subscription] = set()
        self.dropped_total = 0

    @property
    def subscriber_count(self) -> int:
        return len(self._global) + sum(len(s) for s in self._by_run.values())

    def subscribe(self, flt: EventFilter, max_pending: int | None = None) -> Subscription:
        sub = Subscription(self, flt, max_pending or self._max_pending)
        if flt.run_id is not None:
            self._by_run.setdefault(flt.run_id, set()).add(sub)
            return sub
        self._global.add(sub)
        if flt.types is not None and flt.project_id is None:
            for type_ in flt.types:
                self._by_type.setdefault(type_, set()).add(sub)
        else:
            self._unlisted.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        run_id = sub.filter.run_id
        if run_id is None:
            self._global.discard(sub)
            self._unlisted.discard(sub)
            for type_ in sub.filter.types or ():
                listed = self._by_type.get(type_)
                if listed is not None:
                    listed.discard(sub)
                    if not listed:
                        del self._by_type[type_]
            return
        subs = self._by_run.get(run_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._by_run[run_id]

    def drop_all(self) -> None:
        """Every subscriber catches up from the database: the live feed may have a gap (on
        PostgreSQL, after the ``LISTEN`` connection was lost and made again)."""
        for sub in [*self._global, *(s for subs in self._by_run.values() for s in subs)]:
            sub._drop()

    def publish(self, events: list[StoredEvent]) -> None:
        """Hand committed events to every matching subscriber, in order, without waiting."""
        by_run: dict[str, list[StoredEvent]] = {}
        for event in events:
            by_run.setdefault(event.run_id, []).append(event)
        for run_id, run_events in by_run.items():
            for sub in list(self._by_run.get(run_id, ())):
                types = sub.filter.types
                sub._offer(
                    run_events if types is None else [e for e in run_events if e.type in types]
                )
        for sub in list(self._unlisted):
            sub._offer([e for e in events if sub.filter.matches(e)])
        if self._by_type:
            followed: dict[Subscription, list[StoredEvent]] = {}
            for event in events:
                for sub in self._by_type.get(event.type, ()):
                    followed.setdefault(sub, []).append(event)
            for sub, its_events in followed.items():
                sub._offer(its_events)
