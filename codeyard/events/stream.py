"""Replay-then-live event streams, shared by SSE and the WebSocket.

Subscribe first, replay from the database after the client's last id, then follow the hub,
skipping ids already sent: no gap and no duplicate. If the hub drops this subscriber for being
slow, the stream quietly resubscribes and replays from the database again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard.domain.events import StoredEvent
from codeyard.domain.status import IDLE, RunStatus
from codeyard.events.hub import EventFilter, Hub, SubscriberDropped
from codeyard.store import events, runs

REPLAY_PAGE = 5000


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
    while not ended:
        sub = hub.subscribe(flt)
        try:
            while True:
                async with engine.connect() as conn:
                    page = await events.read(
                        conn,
                        run_id=flt.run_id,
                        project_id=flt.project_id,
                        types=flt.types,
                        after=last,
                        limit=REPLAY_PAGE,
                    )
                if page:
                    last = page[-1].id
                    yield page
                if len(page) < REPLAY_PAGE:
                    break
            if on_replay_done is not None:
                on_replay_done()
                on_replay_done = None
            if until_idle and flt.run_id is not None and await _is_idle(engine, flt.run_id):
                # Idle now: what committed after the replay query is already in our buffer.
                rest = [e for e in sub.drain() if e.id > last]
                if rest:
                    yield rest
                return
            while True:
                batch = [e for e in await sub.next_batch() if e.id > last]
                if not batch:
                    continue
                last = batch[-1].id
                yield batch
                if until_idle and any(_ends_stream(e) for e in batch):
                    ended = True
                    break
        except SubscriberDropped:
            continue  # fell behind: resubscribe and catch up from the database
        finally:
            sub.close()


async def _is_idle(engine: AsyncEngine, run_id: str) -> bool:
    async with engine.connect() as conn:
        run = await runs.find(conn, run_id)
    return run is None or RunStatus(run["status"]) in IDLE
