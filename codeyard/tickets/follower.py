"""Follows run status changes: moves the ticket a run works, and drives work queues."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from codeyard.domain.events import StoredEvent
from codeyard.events.hub import EventFilter, SubscriberDropped
from codeyard.services.context import Services
from codeyard.store import events, runs
from codeyard.tickets import agent, queues

log = logging.getLogger(__name__)
TYPES = frozenset({"run.status"})


async def _on_status(svc: Services, run_id: str) -> None:
    async with svc.engine.connect() as conn:
        run = await runs.find(conn, run_id)
    if run is None:
        return
    await agent.sync_ticket(svc, run)
    await queues.on_run_changed(svc, run)


OnStatus = Callable[[Services, str], Awaitable[None]]


async def _handle(svc: Services, batch: list[StoredEvent], on_status: OnStatus) -> None:
    """Each run once per batch: ``on_status`` reads the run's current state anyway."""
    for run_id in dict.fromkeys(e.run_id for e in reversed(batch)):
        try:
            await on_status(svc, run_id)
        except Exception:
            log.warning("following run %s failed", run_id, exc_info=True)


async def _replay(svc: Services, after: int, on_status: OnStatus) -> int:
    """Handle the status changes logged after ``after`` (what a dropped subscription missed);
    returns the last id handled."""
    while True:
        async with svc.engine.connect() as conn:
            batch = await events.read(conn, types=TYPES, after=after, limit=500)
        if batch:
            await _handle(svc, batch, on_status)
            after = batch[-1].id
        if len(batch) < 500:
            return after


async def follow_runs(svc: Services, on_status: OnStatus = _on_status) -> None:
    """Runs for the server's lifetime (cancelled at shutdown). A failure handling one event is
    logged and the follower goes on: a ticket or queue left behind is fixed by hand (or by
    ``reconcile`` at the next start), never by stopping every other queue.

    It remembers the last event id it handled: when its subscription is dropped (it fell
    behind, or PostgreSQL's ``LISTEN`` reconnected), it subscribes again and first reads the
    log after that id, so no status change goes unseen."""
    async with svc.engine.connect() as conn:
        seen = await events.last_id(conn)
    sub = svc.hub.subscribe(EventFilter(types=TYPES))
    try:
        try:
            await queues.reconcile(svc)
        except Exception:
            log.warning("reconciling work queues failed", exc_info=True)
        # What changed between reading the last id and subscribing.
        seen = await _replay(svc, seen, on_status)
        while True:
            try:
                batch = await sub.next_batch()
            except SubscriberDropped:
                sub = svc.hub.subscribe(EventFilter(types=TYPES))
                seen = await _replay(svc, seen, on_status)
                continue
            batch = [e for e in batch if e.id > seen]
            if batch:
                seen = batch[-1].id
                await _handle(svc, batch, on_status)
    finally:
        sub.close()
