"""Run statuses as any client sees them: woken by the runs' ``run.status`` events.

The engine never looks inside the executor (local or distributed): it creates runs through the
run service and observes their rows, so it works the same on either. It does not poll them:
every committed event reaches the hub (on PostgreSQL also another process's, through
``events.pg_fanout``), so a run's row is read again only when a status event for it arrives.
A slow sweep of every watched row stays as a safety net (a status written without an event,
a deleted run); it is not what makes a step end on time.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard.events.hub import EventFilter, Hub, SubscriberDropped, Subscription
from codeyard.store import schema

log = logging.getLogger(__name__)
R = schema.runs
Predicate = Callable[[dict[str, Any]], bool]
#: The events after which a watched run's row is read again (the status door writes one).
WAKE_TYPES = frozenset({"run.status"})
COLUMNS = (
    R.c.id,
    R.c.number,
    R.c.status,
    R.c.status_reason,
    R.c.turns,
    R.c.branch,
    R.c.worktrees,
    R.c.diff_stats,
    R.c.usage,
    R.c.resolution,
    R.c.project_id,
    R.c.repo_ids,
)


class RunWatcher:
    """Futures waiting for a run's row to satisfy a predicate, resolved as its events arrive.

    ``sweep``: seconds between reads of every watched row when no event came (safety net).
    """

    def __init__(self, engine: AsyncEngine, hub: Hub, sweep: float = 1.0) -> None:
        self._engine = engine
        self._hub = hub
        self._sweep = sweep
        self._waiting: dict[str, list[tuple[Predicate, asyncio.Future[dict[str, Any]]]]] = {}
        self._sub: Subscription | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        # Subscribed before any waiter registers, so no status event can fall between.
        self._sub = self._hub.subscribe(EventFilter(types=WAKE_TYPES))
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._sub is not None:
            self._sub.close()

    async def read(self, run_id: str) -> dict[str, Any]:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(*COLUMNS).where(R.c.id == run_id))).first()
        if row is None:
            raise LookupError(f"run {run_id} is gone")
        return dict(row._mapping)

    async def until(self, run_id: str, predicate: Predicate) -> dict[str, Any]:
        """The run's row once ``predicate`` holds for it: read now, then after each of the
        run's status events (registered first, so a change during the read is not missed)."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._waiting.setdefault(run_id, []).append(entry)
        try:
            row = await self.read(run_id)
            if predicate(row):
                return row
            return await future
        finally:
            if not future.done():
                future.cancel()
            elif not future.cancelled():
                future.exception()  # retrieved: a deletion seen after the read is not an error
            waiters = self._waiting.get(run_id, [])
            if entry in waiters:
                waiters.remove(entry)
            if not waiters:
                self._waiting.pop(run_id, None)

    async def _next_ids(self) -> set[str]:
        """The watched runs to read again: those with a new status event, or all of them
        when the sweep is due or the live feed had a gap."""
        assert self._sub is not None
        try:
            batch = await asyncio.wait_for(self._sub.next_batch(), self._sweep)
        except TimeoutError:
            return set(self._waiting)
        except SubscriberDropped:  # fell behind (or PostgreSQL's LISTEN reconnected)
            self._sub = self._hub.subscribe(EventFilter(types=WAKE_TYPES))
            return set(self._waiting)
        return {e.run_id for e in batch if e.run_id in self._waiting}

    async def _loop(self) -> None:
        while True:
            ids = await self._next_ids()
            if not ids:
                continue
            try:
                await self._check(ids)
            except SQLAlchemyError:  # a busy or restarting database: the sweep retries
                log.warning("reading %d watched runs failed; retrying", len(ids), exc_info=True)

    async def _check(self, ids: Iterable[str]) -> None:
        wanted = list(ids)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(*COLUMNS).where(R.c.id.in_(wanted)))).all()
        found = {r.id: dict(r._mapping) for r in rows}
        for run_id in wanted:
            row = found.get(run_id)
            for predicate, future in list(self._waiting.get(run_id, [])):
                if future.done():
                    continue
                if row is None:
                    future.set_exception(LookupError(f"run {run_id} was deleted"))
                elif predicate(row):
                    future.set_result(row)
