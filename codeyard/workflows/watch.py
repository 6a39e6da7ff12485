"""Run statuses as any client sees them: one query per tick for every run a workflow waits on.

The engine never looks inside the executor (local or distributed): it creates runs through the
run service and observes their rows, so it works the same on either.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard.store import schema

log = logging.getLogger(__name__)
R = schema.runs
Predicate = Callable[[dict[str, Any]], bool]
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
    def __init__(self, engine: AsyncEngine, interval: float = 0.02) -> None:
        self._engine = engine
        self._interval = interval
        self._waiting: dict[str, list[tuple[Predicate, asyncio.Future[dict[str, Any]]]]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def read(self, run_id: str) -> dict[str, Any]:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(*COLUMNS).where(R.c.id == run_id))).first()
        if row is None:
            raise LookupError(f"run {run_id} is gone")
        return dict(row._mapping)

    async def until(self, run_id: str, predicate: Predicate) -> dict[str, Any]:
        """The run's row once ``predicate`` holds for it."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        entry = (predicate, future)
        self._waiting.setdefault(run_id, []).append(entry)
        self._wake.set()
        try:
            return await future
        finally:
            waiters = self._waiting.get(run_id, [])
            if entry in waiters:
                waiters.remove(entry)
            if not waiters:
                self._waiting.pop(run_id, None)

    async def _loop(self) -> None:
        while True:
            if not self._waiting:
                self._wake.clear()
                await self._wake.wait()
            ids = list(self._waiting)
            try:
                async with self._engine.connect() as conn:
                    rows = (await conn.execute(select(*COLUMNS).where(R.c.id.in_(ids)))).all()
            except SQLAlchemyError:  # a busy or restarting database: the next tick retries
                log.warning("reading %d watched runs failed; retrying", len(ids), exc_info=True)
                await asyncio.sleep(1.0)
                continue
            found = {r.id: dict(r._mapping) for r in rows}
            for run_id in ids:
                row = found.get(run_id)
                for predicate, future in list(self._waiting.get(run_id, [])):
                    if future.done():
                        continue
                    if row is None:
                        future.set_exception(LookupError(f"run {run_id} was deleted"))
                    elif predicate(row):
                        future.set_result(row)
            await asyncio.sleep(self._interval)
