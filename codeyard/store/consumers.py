"""Durable readers of the event log: derive tables from events exactly once.

A consumer keeps a cursor (the last event id it has applied) in ``consumer_cursors`` and moves
it in the *same* writer transaction as the rows it derives, so a crash either keeps both or
neither: after a restart it resumes from the cursor, and replaying an event it already applied
is impossible.

Live, a consumer is fed by the hub, filtered to its ``types``: committed events arrive in commit
order (= id order, on PostgreSQL too: ``store.writer``'s commit-order lock), so the events after
the cursor are exactly those the hub hands over, and an ``agent.message`` batch wakes no one
that does not count messages. The log itself is read only to catch up: at start, after the
subscription was dropped (it fell behind, or PostgreSQL's ``LISTEN`` reconnected), after a
failed apply or a cursor someone else moved, and at a slow poll (a safety net). So a dropped
subscription or a restart loses nothing. The cursor moves only with applied events (and, while
catching up, past long runs of events of other types, so a restart's scan stays short). A live
chunk that writes nothing (``nothing_to_write``: a status change no one is told about) costs no
transaction: the next one, the poll or a graceful stop moves the cursor past it, and a crash
before that derives it once more (for consumers whose ``prepare`` can run again).

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

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from codeyard.domain.errors import Conflict
from codeyard.domain.events import StoredEvent
from codeyard.events.hub import EventFilter, Hub, SubscriberDropped, Subscription
from codeyard.store import events as event_log
from codeyard.store import schema
from codeyard.store.statement import Statement
from codeyard.store.upsert import insert_ignore
from codeyard.store.writer import Tx, Writer

log = logging.getLogger(__name__)
E = schema.events
C = schema.consumer_cursors
_CURSOR: Statement[tuple[int]] = Statement(
    select(C.c.last_event_id).where(C.c.name == bindparam("name"))
)
_MOVE: Statement[tuple[()]] = Statement(
    C.update()
    .where(C.c.name == bindparam("name"), C.c.last_event_id == bindparam("expected"))
    .values(last_event_id=bindparam("to"))
)


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
    value = await _CURSOR.scalar(conn, name=name)
    return None if value is None else int(value)


async def move_cursor(tx: Tx, name: str, expected: int, to: int) -> None:
    """Advance ``name`` from ``expected`` to ``to``; Conflict if someone else moved it. One
    ``UPDATE`` once the cursor's row exists; its first move inserts it (each statement in a
    writer job is a trip to SQLite's thread: the insert was sent at every move)."""
    moved = await _MOVE.run(tx.conn, name=name, expected=expected, to=to)
    if moved != 1:  # no row yet (or moved by someone else: the insert does nothing then)
        await insert_ignore(tx.conn, C, [{"name": name, "last_event_id": expected}], ["name"])
        moved = await _MOVE.run(tx.conn, name=name, expected=expected, to=to)
    if moved != 1:
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
    #: The safety net: read the log this often even when the hub brought nothing.
    poll_seconds = 30.0
    #: Gather the hub's events this long before applying them (one transaction for many
    #: events, for consumers nobody waits on).
    gather_seconds = 0.0
    #: Hub events held for it at most; beyond, it is dropped and reads the log instead.
    max_pending = 10_000

    def __init__(self, engine: AsyncEngine, writer: Writer, hub: Hub) -> None:
        self.engine = engine
        self.writer = writer
        self.hub = hub
        self._task: asyncio.Task[None] | None = None
        #: One reader at a time (the loop, and callers such as tests and benchmarks).
        self._reading = asyncio.Lock()
        self.applied = 0
        #: The stored cursor as this consumer last wrote or read it (None: not read yet), and
        #: the id up to which it knows there is nothing more to apply (>= the cursor).
        self._cursor: int | None = None
        self._covered = 0
        #: Reads of the log (catch-ups) and hub batches applied: what the tests and the
        #: benchmark's profile count.
        self.catch_ups = 0
        self.live_batches = 0

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
        try:
            await self.settle()
        except Exception:  # the next start derives those events again, which is harmless
            log.warning("%s: could not store its cursor at stop", self.name, exc_info=True)

    def applied_hook(self) -> None:
        """Called after each applied chunk (outside the transaction); default: nothing."""
        return None

    async def catch_up(self) -> int:
        """Apply every committed event after the cursor; returns how many were read."""
        async with self._reading:
            return await self._catch_up()

    async def _catch_up(self) -> int:
        total = 0
        self.catch_ups += 1
        while True:
            async with self.engine.connect() as conn:
                stored = await read_cursor(conn, self.name)
                high = await event_log.last_id(conn)
                if stored is None and self.start_at_end:
                    await self.writer.run(self._start_job(high))
                    self._cursor = self._covered = high
                    return total
                cursor = stored or 0
                if cursor != self._cursor:  # first read, or another process moved it
                    self._cursor, self._covered = cursor, cursor
                start = max(cursor, self._covered)
                if high <= start:
                    return total
                rows = (
                    await conn.execute(
                        select(E.c.id, E.c.run_id, E.c.project_id, E.c.type, E.c.ts, E.c.data)
                        .where(E.c.id > start, E.c.id <= high, E.c.type.in_(self.types))
                        .order_by(E.c.id)
                        .limit(self.chunk)
                    )
                ).all()
                events = [LoggedEvent(*r) for r in rows]
                # A full chunk may stop short of ``high``; otherwise every matching event up
                # to ``high`` was read (ids are committed in order by the one writer).
                upto = events[-1].id if len(events) == self.chunk else high
                if not events and upto - cursor < self.chunk:
                    # Nothing to apply: no transaction, the cursor stays where it is.
                    self._covered = upto
                    return total
                prepared = await self.prepare(conn, events) if events else None
            await self._commit(cursor, upto, events, prepared)
            total += len(events)

    async def _commit(
        self, cursor: int, upto: int, events: Sequence[LoggedEvent], prepared: Any
    ) -> None:
        async def job(tx: Tx) -> None:
            await move_cursor(tx, self.name, cursor, upto)
            if prepared is not None:
                await self.apply(tx, prepared)

        await self.writer.run(job)
        self._cursor = self._covered = upto
        if events:
            self.applied_hook()
        self.applied += len(events)

    async def take(self, batch: Sequence[StoredEvent]) -> int:
        """Apply events the hub delivered (committed, in id order, of ``types``) after a
        catch-up; returns how many were new. Only valid while the subscription made before
        that catch-up was never dropped (``_loop`` sees to it)."""
        async with self._reading:
            if self._cursor is None:
                return await self._catch_up()
            fresh = [
                LoggedEvent(e.id, e.run_id, e.project_id, e.type, e.ts, e.data_json)
                for e in batch
                if e.id > self._covered and e.type in self.types
            ]
            if not fresh:
                return 0
            self.live_batches += 1
            for at in range(0, len(fresh), self.chunk):
                events = fresh[at : at + self.chunk]
                async with self.engine.connect() as conn:
                    prepared = await self.prepare(conn, events)
                if self.nothing_to_write(prepared):
                    # No transaction: the next one (or the poll's ``settle``) moves the cursor
                    # past these too; a restart before that derives them again.
                    self._covered = events[-1].id
                    self.applied += len(events)
                    continue
                await self._commit(self._cursor, events[-1].id, events, prepared)
            return len(fresh)

    def nothing_to_write(self, prepared: Any) -> bool:
        """Whether ``prepared`` writes nothing, so that live events deriving it need no
        transaction (only for a consumer whose ``prepare`` gives the same result when run
        again: a restart re-derives them). Default: every chunk is committed."""
        return False

    async def settle(self) -> None:
        """Move the stored cursor up to what is known to be done (after live chunks that
        wrote nothing), so a restart does not derive them again."""
        async with self._reading:
            if self._cursor is not None and self._covered > self._cursor:
                await self._commit(self._cursor, self._covered, [], None)

    async def _loop(self) -> None:
        sub = self.hub.subscribe(EventFilter(types=self.types), self.max_pending)
        replay = True
        try:
            while True:
                try:
                    if replay:
                        replay = False
                        await self.catch_up()
                    batch = await self._next(sub)
                    if batch is None:  # the poll: nothing came, look anyway
                        await self.settle()
                        replay = True
                        continue
                    await self.take(batch)
                except SubscriberDropped:  # subscribe again, then read from the cursor
                    sub = self.hub.subscribe(EventFilter(types=self.types), self.max_pending)
                    replay = True
                except (Conflict, OSError) as exc:
                    log.warning("%s: %s; reading from its cursor", self.name, exc)
                    replay = True
                except Exception:  # keep following the log; the cursor makes retrying safe
                    log.exception("%s failed to apply events; retrying", self.name)
                    replay = True
                    await asyncio.sleep(1.0)
        finally:
            sub.close()

    async def _next(self, sub: Subscription) -> list[StoredEvent] | None:
        """The hub's next events (gathered for ``gather_seconds``), or None after the poll
        interval; raises ``SubscriberDropped``.

        ``wait_for`` owns the inner wait, so a ``stop()`` arriving at any moment cancels this
        task (an inner future awaited under ``suppress(CancelledError)`` could swallow it)."""
        try:
            batch = await asyncio.wait_for(sub.next_batch(), timeout=self.poll_seconds)
        except TimeoutError:
            return None
        if self.gather_seconds > 0:
            await asyncio.sleep(self.gather_seconds)
            batch.extend(sub.drain())
        return batch
