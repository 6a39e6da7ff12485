"""Per-cluster singletons: background work that must run once, however many API servers run.

Retention, the notification outbox's delivery, analytics rollups and the GitHub sweeper and
poller were started by every API server; on one PostgreSQL database behind a load balancer each
then ran N times (deliveries raced for the same outbox rows, pollers hit GitHub N times). Each
server now competes for one PostgreSQL *session* advisory lock on a connection it keeps for
that purpose; the holder starts the singletons, the others try again every
:data:`RETRY_SECONDS`. The lock goes with its session: a holder that stops, crashes or is
killed (its socket closes) frees it, and another server takes over within one retry. A holder
checks its connection every retry too; when it is lost the singletons stop at once (another
server may hold the lock by then), so two holders overlap at most one retry interval, and only
when the database, not the server, dropped the connection.

SQLite has one server process: it holds the role from the start, with no lock.
Why an advisory lock and not a lease row: no clock, no expiry to tune, and release is the
database's own bookkeeping when the session ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = logging.getLogger(__name__)

#: Seconds between tries of a server that does not hold the role, and between checks of the
#: holder's connection: the bound on a takeover after the holder's death.
RETRY_SECONDS = 5.0


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for ``name``."""
    digest = hashlib.sha256(f"codeyard-cluster:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass(slots=True)
class _Singleton:
    name: str
    start: Callable[[], Awaitable[None]]
    stop: Callable[[], Awaitable[None]]


class Leadership:
    """Elects this process to run a group of singletons, or waits for its turn."""

    def __init__(self, engine: AsyncEngine, name: str = "singletons") -> None:
        self._engine = engine
        self._key = lock_key(name)
        self._singletons: list[_Singleton] = []
        self._conn: AsyncConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self.is_leader = False
        #: Times this process took the role (tests and diagnostics).
        self.terms = 0

    @property
    def shared(self) -> bool:
        return self._engine.dialect.name == "postgresql"

    def add(
        self,
        name: str,
        start: Callable[[], Awaitable[None]],
        stop: Callable[[], Awaitable[None]],
    ) -> None:
        """Run ``start``/``stop`` when this process takes or loses the role (in order/reverse)."""
        self._singletons.append(_Singleton(name, start, stop))

    async def start(self) -> None:
        """Take the role at once when free (so one server alone starts as before); else try
        again in the background."""
        if not self.shared:
            await self._lead()
            return
        with contextlib.suppress(Exception):  # the database is away: the loop tries again
            await self._try_take()
        self._task = asyncio.create_task(self._loop(), name="codeyard-leadership")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self._step_down()
        await self._release()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(RETRY_SECONDS)
            try:
                if self.is_leader:
                    await self._check()
                else:
                    await self._try_take()
            except asyncio.CancelledError:
                raise
            except Exception:  # the connection or the database is lost
                log.warning("lost the cluster role's connection; stepping down", exc_info=True)
                await self._step_down()
                await self._release()

    async def _try_take(self) -> None:
        if self._conn is None:
            self._conn = await self._engine.connect()
        got = (
            await self._conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self._key})
        ).scalar()
        await self._conn.commit()  # the lock is the session's; no transaction stays open
        if got:
            await self._lead()

    async def _check(self) -> None:
        assert self._conn is not None
        await asyncio.wait_for(self._conn.execute(text("SELECT 1")), RETRY_SECONDS)
        await self._conn.commit()

    async def _lead(self) -> None:
        self.is_leader = True
        self.terms += 1
        log.info("this server runs the cluster's singletons")
        for one in self._singletons:
            try:
                await one.start()
            except Exception:  # one broken singleton must not keep the others from running
                log.exception("singleton %s failed to start", one.name)

    async def _step_down(self) -> None:
        if not self.is_leader:
            return
        self.is_leader = False
        for one in reversed(self._singletons):
            try:
                await one.stop()
            except Exception:
                log.exception("singleton %s failed to stop", one.name)

    async def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.invalidate(), 5)  # closes the session: frees the lock
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.close(), 5)
