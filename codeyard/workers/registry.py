"""Registering this process as a worker, its heartbeat, and telling healthy workers apart."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import anyio
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard.agents import registry as agents
from codeyard.domain.events import utc_now
from codeyard.store import fencing, schema
from codeyard.store import workers as store
from codeyard.store.writer import Tx, Writer

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Seconds between heartbeats.
HEARTBEAT_EVERY = 10.0
#: A worker whose last heartbeat is older than this is unhealthy (three missed beats).
STALE_AFTER = 3 * HEARTBEAT_EVERY


def age(heartbeat_at: str, now: datetime) -> float:
    """Seconds since the heartbeat (stored as an ISO time, UTC)."""
    beat = datetime.fromisoformat(heartbeat_at.replace("Z", "+00:00"))
    if beat.tzinfo is None:
        beat = beat.replace(tzinfo=UTC)
    return max(0.0, (now - beat).total_seconds())


def health(heartbeat_at: str, now: datetime, stale_after: float = STALE_AFTER) -> str:
    """``healthy`` while the heartbeat is fresh, else ``unhealthy`` (pure; for the listing)."""
    return "healthy" if age(heartbeat_at, now) <= stale_after else "unhealthy"


def with_health(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    seconds = age(str(row["heartbeat_at"]), now)
    return {
        **row,
        "health": health(str(row["heartbeat_at"]), now),
        "heartbeat_age_seconds": round(seconds, 3),
    }


async def capabilities(engine: AsyncEngine) -> dict[str, Any]:
    """What this host can serve: agent CLIs (installed or not, with versions) and the
    repositories whose clones are on its disk."""
    described = await anyio.to_thread.run_sync(agents.describe_all)
    providers = {
        d["name"]: {"available": bool(d["available"]), "version": d.get("version")}
        for d in described
    }
    async with engine.connect() as conn:
        rows = (await conn.execute(select(schema.repos.c.id, schema.repos.c.path))).all()
    cached = sorted(repo_id for repo_id, path in rows if Path(path).is_dir())
    return {"providers": providers, "repos_cached": cached}


class Heartbeat:
    """Registers one worker row at start, beats every ``every`` seconds, removes it at stop."""

    def __init__(
        self,
        engine: AsyncEngine,
        writer: Writer,
        *,
        kind: str,
        slots: int,
        free_slots: Callable[[], int],
        every: float = HEARTBEAT_EVERY,
        host: str | None = None,
    ) -> None:
        self._engine, self._writer = engine, writer
        self._kind, self._slots, self._free = kind, slots, free_slots
        self._every = every
        #: The machine's name, or the name a worker host was given (``codeyard worker --name``).
        host = host or socket.gethostname()
        self.worker_id = f"{host}:{os.getpid()}:{kind}"
        self._host = host
        self._task: asyncio.Task[None] | None = None
        #: The row as registered (capabilities probed once, at start), and when it is.
        self.row: dict[str, Any] = {}
        self.registered = asyncio.Event()

    async def start(self) -> None:
        """Register one beat after start-up, then beat: probing the agent CLIs (one process
        each, seconds in all) must not delay the server's start, and the probe's imports run in
        threads, which must not race the start-up's own imports of the same packages."""
        self._task = asyncio.create_task(self._run(), name="codeyard-worker-heartbeat")

    async def _run(self) -> None:
        await asyncio.sleep(self._every)
        try:
            await self.register()
        except Exception:  # shows as a missing worker; the server itself is fine
            log.exception("worker registration failed")
            return
        await self._beat(self.row)

    async def register(self) -> None:
        """Probe this host's capabilities and write the worker row (again)."""
        caps = await capabilities(self._engine)
        now = utc_now()
        row = {
            "id": self.worker_id,
            "host": self._host,
            "kind": self._kind,
            "capabilities": caps,
            "slots": self._slots,
            "free_slots": self._free(),
            "started_at": now,
            "heartbeat_at": now,
        }
        await self._write(lambda tx: store.upsert(tx, row))
        self.row = row
        self.registered.set()

    async def _beat(self, row: dict[str, Any]) -> None:
        while True:
            await asyncio.sleep(self._every)
            try:
                await self.beat_once(row)
            except Exception:  # a failed beat shows as a stale worker, not a crash
                log.exception("worker heartbeat failed")

    async def beat_once(self, row: dict[str, Any]) -> None:
        """One heartbeat: the time and the free slots; registers again if the row is gone."""
        free, now = self._free(), utc_now()
        if not await self._write(lambda tx: store.beat(tx, self.worker_id, free, now)):
            fresh = {**row, "free_slots": free, "heartbeat_at": now}
            await self._write(lambda tx: store.upsert(tx, fresh))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        with contextlib.suppress(Exception):  # the writer may already be failing: stale is fine
            await self._write(lambda tx: store.remove(tx, self.worker_id))

    async def _write(self, job: Callable[[Tx], Awaitable[T]]) -> T:
        """Write this worker's row: a job that writes to no run (``fencing.NO_RUN``), so the
        PostgreSQL writer's appends pass it while it waits for the job-order lock."""
        token = fencing.current.set(fencing.NO_RUN)
        try:
            return await self._writer.run(job)
        finally:
            fencing.current.reset(token)
