"""Failed sign-in attempts counted by every API server of one PostgreSQL database (issue 16).

``auth.ratelimit.FailureLimiter`` counts in memory: behind a load balancer with N API servers a
password guesser got N times five guesses a minute per address and per username. Here each
failure is a row of ``auth_failures`` (migration ``0023``, PostgreSQL only) stamped with the
database's clock, so every server reads the same window. The same answers as the in-memory
limiter: ``retry_after`` is None while fewer than ``limit`` failures fall in the window, else
the seconds until the oldest leaves it; a success ``reset``\\s its username's count.

Checking and counting are separate statements, as in memory (the password check sits between
them), so two servers checking the same key at the same instant may each let one more guess
through: the limit can be passed by the number of servers at most once per window, not N-fold.
Expired rows of a key go when it fails again; every :data:`SWEEP_EVERY` failures a server
deletes every key's expired rows (addresses that never come back).
"""

from __future__ import annotations

import math

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard.store.writer import Tx, Writer

__all__ = ["SWEEP_EVERY", "SharedFailures"]

SWEEP_EVERY = 200
_NOW = text("SELECT extract(epoch FROM clock_timestamp())")
_WINDOW = text(
    "SELECT count(*), min(at), extract(epoch FROM clock_timestamp()) FROM auth_failures "
    "WHERE key = :k AND at > extract(epoch FROM clock_timestamp()) - :window"
)
_PRUNE = text("DELETE FROM auth_failures WHERE key = :k AND at <= :oldest")
_SWEEP = text("DELETE FROM auth_failures WHERE at <= :oldest")
_ADD = text("INSERT INTO auth_failures (key, at) VALUES (:k, :now)")
_FORGET = text("DELETE FROM auth_failures WHERE key = :k")


class SharedFailures:
    """At most ``limit`` failures per ``window`` seconds per key, counted in the database."""

    def __init__(
        self, engine: AsyncEngine, writer: Writer, limit: int = 5, window: float = 60.0
    ) -> None:
        self.engine = engine
        self.writer = writer
        self.limit = limit
        self.window = window
        self._failures = 0

    async def retry_after(self, key: str) -> int | None:
        """Seconds to wait before ``key`` may try again, or None when it may try now."""
        async with self.engine.connect() as conn:
            count, oldest, now = (
                await conn.execute(_WINDOW, {"k": key[:300], "window": self.window})
            ).one()
        if int(count) < self.limit:
            return None
        return max(1, math.ceil(float(oldest) + self.window - float(now)))

    async def failed(self, *keys: str) -> None:
        """Count one failure against each of ``keys`` (one transaction)."""
        self._failures += 1
        sweep = self._failures % SWEEP_EVERY == 0

        async def job(tx: Tx) -> None:
            now = float((await tx.conn.execute(_NOW)).scalar_one())
            if sweep:
                await tx.conn.execute(_SWEEP, {"oldest": now - self.window})
            for key in keys:
                await tx.conn.execute(_PRUNE, {"k": key[:300], "oldest": now - self.window})
                await tx.conn.execute(_ADD, {"k": key[:300], "now": now})

        await self.writer.run(job)

    async def reset(self, key: str) -> None:
        async def job(tx: Tx) -> None:
            await tx.conn.execute(_FORGET, {"k": key[:300]})

        await self.writer.run(job)
