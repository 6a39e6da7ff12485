"""Follows run status changes: moves the ticket a run works, and drives work queues."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable

from codeyard.domain.events import StoredEvent
from codeyard.events.stream import follow_types
from codeyard.services.context import Services
from codeyard.store import events
from codeyard.tickets import agent, queue_driver
from codeyard.tickets import store as tickets_store

log = logging.getLogger(__name__)
TYPES = frozenset({"run.status"})


async def _on_status(svc: Services, run_id: str) -> None:
    """Whether the run works a ticket and whether a queue of its project runs are read with
    the run, in one statement: most runs do neither, and moving a ticket is a writer job,
    queued behind every run's appends, at each turn end of every run when it was asked for
    blindly (issue 15). ``sync_ticket`` reads the ticket again in its job, and a running
    queue is read whole, so what moved meanwhile is judged as it is then."""
    run, worked, queue_running = await tickets_store.run_and_work(svc.engine, run_id)
    if run is None:
        return
    if worked:
        await agent.sync_ticket(svc, run)
    if queue_running:
        await queue_driver.on_run_changed(svc, run)


OnStatus = Callable[[Services, str], Awaitable[None]]


async def _handle(svc: Services, batch: list[StoredEvent], on_status: OnStatus) -> None:
    """Each run once per batch, in the order of its last change, when that change settles it
    (``queue_driver.SETTLING``: a turn ended, the run landed or stopped short; nothing else moves a
    ticket or a queue): ``on_status`` reads the run's current state anyway. A run whose last
    change here does not settle it is not read: a later change that settles it comes too."""
    last: dict[str, StoredEvent] = {}
    for event in batch:
        last.pop(event.run_id, None)
        last[event.run_id] = event
    for run_id, event in last.items():
        if event.data.get("to") not in queue_driver.SETTLING:
            continue
        try:
            await on_status(svc, run_id)
        except Exception:
            log.warning("following run %s failed", run_id, exc_info=True)


async def follow_runs(svc: Services, on_status: OnStatus = _on_status) -> None:
    """Runs for the server's lifetime (cancelled at shutdown). A failure handling one event is
    logged and the follower goes on: a ticket or queue left behind is fixed by hand (or by
    ``reconcile`` at the next start), never by stopping every other queue.

    It reads through ``follow_types``: what changed after the log's end it saw before
    reconciling, and, after a dropped subscription, what the log holds after the last id it
    handled, so no status change goes unseen."""
    async with svc.engine.connect() as conn:
        seen = await events.last_id(conn)
    try:
        await queue_driver.reconcile(svc)
    except Exception:
        log.warning("reconciling work queues failed", exc_info=True)
    async with contextlib.aclosing(follow_types(svc.engine, svc.hub, TYPES, after=seen)) as feed:
        async for batch in feed:
            await _handle(svc, batch, on_status)
