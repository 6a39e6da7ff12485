"""Replay-then-live event streams, shared by SSE and the WebSocket.

Subscribe first, replay from the database after the client's last id, then follow the hub,
skipping ids already sent: no gap and no duplicate. If the hub drops this subscriber for being
slow, the stream quietly resubscribes and replays from the database again. The server's own
followers (ticket follower, after-turn checks and pushes, landings) read through
:func:`follow_types`, the same way.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import replace

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from codeyard.domain.events import StoredEvent
from codeyard.domain.status import IDLE, RunStatus
from codeyard.events.hub import EventFilter, Hub, SubscriberDropped
from codeyard.store import events, runs, schema

REPLAY_PAGE = 500
E = schema.events


async def _seq_after(conn: AsyncConnection, run_id: str, after: int) -> int:
    """The run's last ``seq`` whose event id is at most ``after`` (0 if none)."""
    if after <= 0:
        return 0
    seq = await events.seq_of(conn, run_id, after)
    if seq is None:  # not an id of this run (e.g. from the global stream): look it up
        seq = (
            await conn.execute(
                select(E.c.seq)
                .where(E.c.run_id == run_id, E.c.id <= after)
                .order_by(E.c.seq.desc())
                .limit(1)
            )
        ).scalar()
    return int(seq or 0)


def _unfiltered(flt: EventFilter) -> bool:
    """No filter but the run: a run's page is the kept statement (``events.run_page``)."""
    return flt.project_id is None and not flt.types


async def _run_page(
    conn: AsyncConnection, flt: EventFilter, after: int, after_seq: int
) -> list[StoredEvent]:
    """One replay page of a run, walked by ``seq`` on the ``(run_id, seq)`` index.

    Within a run ``seq`` and ``id`` grow together (the writer numbers both at once), so this is
    the same page as ``id > after ORDER BY id``; asked that way, SQLite reads the whole run
    through the index and sorts it for every page (a 100,000-event replay took ~1.2 s of it).
    """
    if flt.run_id is not None and _unfiltered(flt):  # kept statement
        return await events.run_page(conn, flt.run_id, after, after_seq, REPLAY_PAGE)
    stmt = (
        select(E.c.id, E.c.run_id, E.c.project_id, E.c.seq, E.c.type, E.c.ts, E.c.data)
        .where(E.c.run_id == flt.run_id, E.c.seq > after_seq, E.c.id > after)
        .order_by(E.c.seq)
        .limit(REPLAY_PAGE)
    )
    if flt.project_id is not None:
        stmt = stmt.where(E.c.project_id == flt.project_id)
    if flt.types:
        stmt = stmt.where(E.c.type.in_(sorted(flt.types)))
    rows = (await conn.execute(stmt)).all()
    return [StoredEvent(r[0], r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows]


async def _replay_page(
    engine: AsyncEngine, flt: EventFilter, after: int, after_seq: int | None
) -> tuple[list[StoredEvent], int | None]:
    """The next page after ``after`` and, for a run, the ``seq`` to continue from."""
    run_id = flt.run_id
    if run_id is not None and _unfiltered(flt) and (after_seq is not None or after <= 0):
        # One statement, so the engine: no transaction to end (on SQLite it is read on the
        # event loop's own connection, whose one page cache stays bounded: no shrinking).
        start = 0 if after_seq is None else after_seq
        page = await events.run_page(engine, run_id, after, start, REPLAY_PAGE)
        return page, page[-1].seq if page else start
    async with engine.connect() as conn:
        if flt.run_id is None:
            page = await events.read(
                conn,
                project_id=flt.project_id,
                types=flt.types,
                after=after,
                limit=REPLAY_PAGE,
            )
            await _shrink_after_long_read(conn, page)
            return page, None
        if after_seq is None:
            after_seq = await _seq_after(conn, flt.run_id, after)
        page = await _run_page(conn, flt, after, after_seq)
        await _shrink_after_long_read(conn, page)
        return page, page[-1].seq if page else after_seq


async def _shrink_after_long_read(conn: AsyncConnection, page: list[StoredEvent]) -> None:
    """A full page means a long replay: let SQLite free this connection's page cache.

    Each pooled connection keeps a page cache of up to 2 MiB for its life, filled by whatever
    it read. Ten clients replaying a 100,000-event run at once filled one on every connection
    they used and grew the server by ~30 MB for good (bench/stream_memory.py); freed after each
    page, a replay costs a page's worth of cache per connection. Short reads keep theirs.
    """
    if len(page) == REPLAY_PAGE and conn.dialect.name == "sqlite":
        await conn.exec_driver_sql("PRAGMA shrink_memory")


def _ends_stream(event: StoredEvent) -> bool:
    """A ``run.status`` event into an idle status (for ``until_idle``)."""
    return event.type == "run.status" and event.data.get("to") in {str(s) for s in IDLE}


async def follow(
    engine: AsyncEngine,
    hub: Hub,
    flt: EventFilter,
    after: int,
    *,
    until_idle: bool = False,
    on_replay_done: Callable[[], None] | None = None,
) -> AsyncIterator[list[StoredEvent]]:
    """Yield batches of events with ids above ``after``, replayed and then live."""
    last = after
    ended = False
    # To notice the end, an until_idle stream also listens for status changes it does not show.
    live_flt = flt
    if until_idle and flt.types is not None:
        live_flt = replace(flt, types=flt.types | {"run.status"})
    while not ended:
        sub = hub.subscribe(live_flt)
        try:
            last_seq: int | None = None  # found from ``last`` on the first page
            while True:
                page, last_seq = await _replay_page(engine, flt, last, last_seq)
                if page:
                    last = page[-1].id
                    yield page
                if len(page) < REPLAY_PAGE:
                    break
            if on_replay_done is not None:
                on_replay_done()
                on_replay_done = None
            if until_idle and flt.run_id is not None and await _is_idle(engine, flt.run_id):
                # Idle now: read what committed after the replay query from the database (on
                # PostgreSQL the hub hears of commits a moment later, through NOTIFY).
                while True:
                    page, last_seq = await _replay_page(engine, flt, last, last_seq)
                    if page:
                        last = page[-1].id
                        yield page
                    if len(page) < REPLAY_PAGE:
                        return
            while True:
                batch = [e for e in await sub.next_batch() if e.id > last]
                if not batch:
                    continue
                last = batch[-1].id
                shown = batch if live_flt is flt else [e for e in batch if flt.matches(e)]
                if shown:
                    yield shown
                if until_idle and any(_ends_stream(e) for e in batch):
                    ended = True
                    break
        except SubscriberDropped:
            continue  # fell behind: resubscribe and catch up from the database
        finally:
            sub.close()


async def _is_idle(engine: AsyncEngine, run_id: str) -> bool:
    run = await runs.find(engine, run_id)
    return run is None or RunStatus(run["status"]) in IDLE


async def follow_types(
    engine: AsyncEngine, hub: Hub, types: frozenset[str], after: int | None = None
) -> AsyncGenerator[list[StoredEvent], None]:
    """A server-side follower's feed: batches of the events of ``types`` logged after ``after``
    (default: the log's end when first iterated), from the hub and, after its subscription was
    dropped (it fell behind, or PostgreSQL's ``LISTEN`` reconnected), from the log after the
    last id yielded. It is :func:`follow` (subscribe first, read back, skip ids already
    yielded), so each event comes once, in id order, with no gap.

    Iterate it under ``contextlib.aclosing`` so a cancelled follower closes its subscription."""
    if after is None:
        async with engine.connect() as conn:
            after = await events.last_id(conn)
    async for batch in follow(engine, hub, EventFilter(types=types), after):
        yield batch
