"""Durable readers of the event log: derive tables from events exactly once.

A consumer keeps a cursor (the last event id it has applied) in ``consumer_cursors`` and moves
it in the *same* writer transaction as the rows it derives, so a crash either keeps both or
neither: after a restart it resumes from the cursor, and replaying an event it already applied
is impossible. The hub only wakes it up; the rows themselves are always read back from the
database, so a dropped subscription or a restart loses nothing.

Analytics rollups and the notification outbox are built this way; neither touches the
executor or the writer's code (they are subscribers, as STYLE.md §3 asks).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from codeyard.domain.errors import Conflict
from codeyard.events.hub import EventFilter, Hub, SubscriberDropped, Subscription
from codeyard.store import schema
from codeyard.store.upsert import insert_ignore
from codeyard.store.writer import Tx, Writer

log = logging.getLogger(__name__)
E = schema.events
C = schema.consumer_cursors


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    id: int
    run_id: str
    project_id: str
    type: str
    ts: str
    data: str


async def read_cursor(conn: AsyncConnection, name: str) -> int | None:
    """The last event id ``name`` applied; None before its first run."""
    value = (await conn.execute(select(C.c.last_event_id).where(C.c.name == name))).scalar()
    return None if value is None else int(value)


async def move_cursor(tx: Tx, name: str, expected: int, to: int) -> None:
    """Advance ``name`` from ``expected`` to ``to``; Conflict if someone else moved it."""
    await insert_ignore(tx.conn, C, [{"name": name, "last_event_id": expected}], ["name"])
    result = await tx.conn.execute(
        C.update().where(C.c.name == name, C.c.last_event_id == expected).values(last_event_id=to)
    )
    if result.rowcount != 1:
        raise Conflict(f"The {name} cursor moved under this consumer; it will re-read.")


class LogConsumer(abc.ABC):
    """Follows the log for ``types``; subclasses implement :meth:`prepare` and :meth:`apply`.

    ``prepare`` runs outside the writer (reads only) and returns what ``apply`` writes inside
    the writer's transaction, together with the cursor move.
    """

    name = "consumer"
    types: frozenset[str] = frozenset()
    #: On its very first run, start after the events already in the log instead of reading
    #: them all (a notifier added to an old database must not announce the past).
    start_at_end = False
    chunk = 2000
    poll_seconds = 2.0

    def __init__(self, engine: AsyncEngine, writer: Writer, hub: Hub) -> None:
        self.engine = engine
        self.writer = writer
        self.hub = hub
        self._task: asyncio.Task[None] | None = None
        #: One reader at a time (the loop, and callers such as tests and benchmarks).
        self._reading = asyncio.Lock()
        self.applied = 0

    @abc.abstractmethod
    async def prepare(self, conn: AsyncConnection, events: Sequence[LoggedEvent]) -> Any:
        """Read what ``apply`` needs for ``events`` (outside the write transaction)."""

    @abc.abstractmethod
    async def apply(self, tx: Tx, prepared: Any) -> None:
        """Write the result in the same transaction that moves the cursor."""

    def _start_job(self, high: int) -> Callable[[Tx], Awaitable[None]]:
        async def job(tx: Tx) -> None:
            await move_cursor(tx, self.name, high, high)

        return job

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=f"codeyard-{self.name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def applied_hook(self) -> None:
        """Called after each applied chunk (outside the transaction); default: nothing."""
        return None

    async def catch_up(self) -> int:
        """Apply every committed event after the cursor; returns how many were read."""
        async with self._reading:
            return await self._catch_up()

    async def _catch_up(self) -> int:
        total = 0
        while True:
            async with self.engine.connect() as conn:
                stored = await read_cursor(conn, self.name)
                high = int((await conn.execute(select(func.max(E.c.id)))).scalar() or 0)
                if stored is None and self.start_at_end:
                    await self.writer.run(self._start_job(high))
                    return total
                cursor = stored or 0
                if high <= cursor:
                    return total
                rows = (
                    await conn.execute(
                        select(E.c.id, E.c.run_id, E.c.project_id, E.c.type, E.c.ts, E.c.data)
                        .where(E.c.id > cursor, E.c.id <= high, E.c.type.in_(self.types))
                        .order_by(E.c.id)
                        .limit(self.chunk)
                    )
                ).all()
                events = [LoggedEvent(*r) for r in rows]
                # A full chunk may stop short of ``high``; otherwise every matching event up
                # to ``high`` was read (ids are committed in order by the one writer).
                upto = events[-1].id if len(events) == self.chunk else high
                prepared = await self.prepare(conn, events) if events else None

            async def job(
                tx: Tx, cursor: int = cursor, upto: int = upto, p: Any = prepared
            ) -> None:
                await move_cursor(tx, self.name, cursor, upto)
                if p is not None:
                    await self.apply(tx, p)

            await self.writer.run(job)
            if events:
                self.applied_hook()
            total += len(events)
            self.applied += len(events)

    async def _loop(self) -> None:
        sub = self.hub.subscribe(EventFilter(types=self.types), max_pending=10_000)
        try:
            while True:
                try:
                    await self.catch_up()
                except (Conflict, OSError) as exc:
                    log.warning("%s: %s; retrying", self.name, exc)
                except Exception:  # keep following the log; the cursor makes retrying safe
                    log.exception("%s failed to apply events; retrying", self.name)
                    await asyncio.sleep(1.0)
                await self._idle(sub)
                if sub.dropped:
                    sub = self.hub.subscribe(EventFilter(types=self.types), max_pending=10_000)
        finally:
            sub.close()

    async def _idle(self, sub: Subscription) -> None:
        """Wait for matching events or the poll interval.

        ``wait_for`` owns the inner wait, so a ``stop()`` arriving at any moment cancels this
        task (an inner future awaited under ``suppress(CancelledError)`` could swallow it)."""
        with contextlib.suppress(TimeoutError, SubscriberDropped):
            await asyncio.wait_for(sub.next_batch(), timeout=self.poll_seconds)
