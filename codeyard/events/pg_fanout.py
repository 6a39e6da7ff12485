"""Live fan-out across processes on PostgreSQL: ``LISTEN`` for other writers' event ids.

Each writer process announces the ids it committed with ``NOTIFY`` in the same transaction
(``store.writer``); PostgreSQL delivers notifications at commit, in commit order. This listener
reads those rows and hands them to the local hub, so an SSE client on API server A follows
events written by API server B or by a worker.

The process's own events go the same way, in the order PostgreSQL delivers the announcements
(the writer hands them to :meth:`PgFanout.committed` instead of the hub, and they are published
from memory when their announcement comes): published at once, they could overtake another
process's events committed just before them, and a stream that skips ids it has passed would
lose those. Within one run, events are numbered under the run row's lock, so their ids grow in
commit order.

The same connection hears every committed write of the stored settings (``store.settings``
announces each on its own channel) and drops this process's copy of them; while it is not
listening (lost, being made again, stopped) no copy is kept and they are read every time. It
also hears the wake-ups of followers that would otherwise poll (``store.wakeups``: workflow
approval requests, port leases), and says while it cannot.

SQLite has one writer process and needs none of this: the hub alone fans out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from codeyard.domain.events import StoredEvent
from codeyard.events.hub import Hub
from codeyard.store import events, wakeups
from codeyard.store import settings as settings_store
from codeyard.store.event_sql import NOTIFY_CHANNEL

log = logging.getLogger(__name__)
#: Own events kept waiting for their announcement at most (a bound if announcements stop).
_MINE_MAX = 100_000
#: Reads the announced events, on the listening connection itself (outside any transaction).
_READ_SQL = (
    "SELECT id, run_id, project_id, seq, type, ts, data FROM events "
    "WHERE id = ANY($1::bigint[]) ORDER BY id"
)
#: Announced ids read with one query at most: more announcements wait for the next read (one
#: announcement holds under 1,000 ids; asyncpg takes at most 32,767 parameters).
_IDS_PER_READ = 4000


def parse_payload(payload: str) -> tuple[str, list[int]]:
    """``token:id,id,…`` → (token, ids); a malformed payload yields no ids."""
    token, _, rest = payload.partition(":")
    try:
        return token, [int(part) for part in rest.split(",") if part]
    except ValueError:
        return token, []


async def _driver(conn: AsyncConnection) -> Any:
    """The asyncpg connection under ``conn`` (``add_listener`` is asyncpg's own API)."""
    raw = (await conn.get_raw_connection()).driver_connection
    if raw is None:
        raise RuntimeError("The PostgreSQL connection is closed.")
    return raw


class PgFanout:
    """One ``LISTEN`` connection per process, and one task that publishes what it hears."""

    def __init__(self, engine: AsyncEngine, hub: Hub) -> None:
        self._engine = engine
        self._hub = hub
        #: Names this process in its writer's announcements (``Writer(token=…)``).
        self.token = uuid.uuid4().hex[:12]
        self._queue: asyncio.Queue[tuple[bool, list[int]]] = asyncio.Queue()
        #: Events this process committed, by id, until their announcement comes back.
        self._mine: dict[int, StoredEvent] = {}
        #: Kept out of the pool for the process's life: its asyncpg connection listens.
        self._conn: AsyncConnection | None = None
        #: Its asyncpg connection, which also reads the announced rows: one round trip, where a
        #: pooled connection costs a check-out ping, ``BEGIN`` and ``ROLLBACK`` besides, and
        #: waits behind the API's requests when the pool is busy.
        self._raw: Any = None
        self._task: asyncio.Task[None] | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        #: Events published from other processes, and times the connection was made again
        #: (tests and diagnostics).
        self.received = 0
        self.reconnects = 0

    def committed(self, stored: list[StoredEvent]) -> None:
        """The writer's ``on_commit``: keep our events until PostgreSQL announces them."""
        if len(self._mine) > _MINE_MAX:  # announcements stopped coming (a lost connection)
            log.warning("dropping %d unannounced events (read again on replay)", len(self._mine))
            self._mine.clear()
        for event in stored:
            self._mine[event.id] = event

    async def start(self) -> None:
        await self._listen()
        self._task = asyncio.create_task(self._publish(), name="codeyard-pg-fanout")
        self._keeper = asyncio.create_task(self._keep_listening(), name="codeyard-pg-listen")

    async def _listen(self) -> None:
        self._lost.clear()
        self._conn = await self._engine.connect()
        raw = await _driver(self._conn)
        await raw.add_listener(NOTIFY_CHANNEL, self._heard)
        await raw.add_listener(settings_store.NOTIFY_CHANNEL, self._settings_written)
        await raw.add_listener(wakeups.NOTIFY_CHANNEL, self._woken)
        raw.add_termination_listener(self._terminated)
        self._raw = raw
        settings_store.hear_writes(self._engine)  # from now on every write is heard
        wakeups.hear_all(self._engine)

    def _settings_written(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload != self.token:  # this process's own write dropped the copy at commit
            settings_store.changed(self._engine)

    def _woken(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        wakeups.wake(self._engine, payload)

    def _terminated(self, _conn: Any) -> None:
        settings_store.hear_writes(self._engine, False)  # writes meanwhile would go unheard
        wakeups.hear_all(self._engine, False)
        self._lost.set()

    async def _keep_listening(self) -> None:
        """A lost ``LISTEN`` connection is made again; what was announced meanwhile is not
        heard, so every subscriber is dropped and replays from the database (no gap)."""
        while True:
            await self._lost.wait()
            log.warning("the LISTEN connection was lost; listening again")
            lost, self._conn, self._raw = self._conn, None, None
            if lost is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(lost.invalidate(), 5)
            delay = 0.2
            while True:
                try:
                    await self._listen()
                    break
                except Exception:  # the database is away: keep trying, with a bound wait
                    log.exception("LISTEN failed; retrying in %.1f s", delay)
                    await asyncio.sleep(delay)
                    delay = min(5.0, delay * 2)
            self._mine.clear()
            self.reconnects += 1
            self._hub.drop_all()

    async def stop(self) -> None:
        settings_store.hear_writes(self._engine, False)
        wakeups.hear_all(self._engine, False)
        for task in (self._keeper, self._task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._keeper = self._task = None
        conn, self._conn, self._raw = self._conn, None, None
        if conn is not None:
            with contextlib.suppress(Exception):
                listening = await _driver(conn)
                await asyncio.wait_for(listening.remove_listener(NOTIFY_CHANNEL, self._heard), 5)
                await asyncio.wait_for(
                    listening.remove_listener(
                        settings_store.NOTIFY_CHANNEL, self._settings_written
                    ),
                    5,
                )
                await asyncio.wait_for(
                    listening.remove_listener(wakeups.NOTIFY_CHANNEL, self._woken), 5
                )
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 5)

    def _heard(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        token, ids = parse_payload(payload)
        if ids:
            self._queue.put_nowait((token == self.token, ids))

    async def _publish(self) -> None:
        """Publish announced batches in the order they were announced (commit order).

        Every announcement waiting when the task wakes is handled together, with one read of
        the rows of all of them: under load (many writers committing small batches) a read per
        announcement queued them behind each other, and each waited for all the reads before
        it."""
        while True:
            waiting = [await self._queue.get()]
            count = len(waiting[0][1])
            while not self._queue.empty() and count < _IDS_PER_READ:
                waiting.append(self._queue.get_nowait())
                count += len(waiting[-1][1])
            batches: list[tuple[bool, list[int], list[StoredEvent] | None]] = []
            missing: list[int] = []
            for own, ids in waiting:
                kept = [self._mine.pop(i) for i in ids if i in self._mine] if own else []
                if len(kept) == len(ids):
                    batches.append((own, ids, kept))
                else:
                    batches.append((own, ids, None))
                    missing.extend(ids)
            read = await self._read(missing) if missing else {}
            for own, ids, known in batches:
                out = known
                if out is None:
                    out = [read[i] for i in sorted(ids) if i in read]
                    if not own:
                        self.received += len(out)
                if out:
                    self._hub.publish(out)

    async def _read(self, ids: list[int]) -> dict[int, StoredEvent]:
        """The announced events, by id: on the listening connection, else (it is being made
        again) on a pooled one."""
        try:
            if self._raw is not None:
                rows = await self._raw.fetch(_READ_SQL, ids)
                return {r[0]: StoredEvent(r[0], r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows}
        except Exception:  # the connection was lost meanwhile: the pool's read below
            log.warning("reading %d announced events on the LISTEN connection failed", len(ids))
        try:
            async with self._engine.connect() as conn:
                return {e.id: e for e in await events.read_ids(conn, ids)}
        except Exception:  # a lost read: streams catch up on their next replay
            log.exception("could not read %d announced events", len(ids))
            return {}
