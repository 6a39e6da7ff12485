"""Follows run status changes: moves the ticket a run works, and drives work queues."""

from __future__ import annotations

import asyncio
import logging

from codeyard.events.hub import EventFilter, SubscriberDropped
from codeyard.services.context import Services
from codeyard.store import runs
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


async def follow_runs(svc: Services) -> None:
    """Runs for the server's lifetime (cancelled at shutdown). A failure handling one event is
    logged and the follower goes on: a ticket or queue left behind is fixed by hand (or by
    ``reconcile`` at the next start), never by stopping every other queue."""
    sub = svc.hub.subscribe(EventFilter(types=TYPES))
    try:
        try:
            await queues.reconcile(svc)
        except Exception:
            log.warning("reconciling work queues failed", exc_info=True)
        while True:
            try:
                batch = await sub.next_batch()
            except SubscriberDropped:
                sub = svc.hub.subscribe(EventFilter(types=TYPES))
                continue
            for event in batch:
                try:
                    await _on_status(svc, event.run_id)
                except Exception:
                    log.warning("following run %s failed", event.run_id, exc_info=True)
    except asyncio.CancelledError:
        sub.close()
        raise
