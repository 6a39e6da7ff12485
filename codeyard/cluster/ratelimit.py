"""Run-creation limits shared by every API server of one PostgreSQL database (issue 16).

In memory, each API server counted its own window, so N servers behind a load balancer let a
caller create N times the limit. Here each hit is a row of ``rate_hits`` (migration ``0021``,
PostgreSQL only), stamped with the database's clock; a hit counts the key's rows in the window
under a transaction advisory lock on the key, so two servers never both let the last one
through. Old rows of the key are deleted as it goes, and every :data:`SWEEP_EVERY` hits a
server deletes every key's old rows (keys that are never hit again). The same sliding window as
``api.limits.SlidingWindow`` (the SQLite and single-server case), with the same answer: None
when allowed, else the seconds until the next hit would be.
"""

from __future__ import annotations

import math

from sqlalchemy import text

from codeyard.store.writer import Tx, Writer

_PRUNE = text("DELETE FROM rate_hits WHERE key = :k AND at <= :oldest")
_SWEEP = text("DELETE FROM rate_hits WHERE at <= :oldest")
#: Hits of this process between two deletions of every key's expired rows.
SWEEP_EVERY = 500
_COUNT = text("SELECT count(*), min(at) FROM rate_hits WHERE key = :k")
_HIT = text("INSERT INTO rate_hits (key, at) VALUES (:k, :now)")


class SharedWindow:
    """At most ``limit`` hits per ``window`` seconds per key, counted in the database."""

    def __init__(self, writer: Writer, limit: int, window: float = 60.0) -> None:
        self.writer = writer
        self.limit = limit
        self.window = window
        self._hits = 0

    async def hit(self, key: str) -> int | None:
        key = key[:300]
        self._hits += 1
        sweep = self._hits % SWEEP_EVERY == 0

        async def job(tx: Tx) -> int | None:
            conn = tx.conn
            await conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": key})
            now = float(
                (
                    await conn.execute(text("SELECT extract(epoch FROM clock_timestamp())"))
                ).scalar_one()
            )
            if sweep:
                await conn.execute(_SWEEP, {"oldest": now - self.window})
            await conn.execute(_PRUNE, {"k": key, "oldest": now - self.window})
            count, oldest = (await conn.execute(_COUNT, {"k": key})).one()
            if int(count) >= self.limit:
                return max(1, math.ceil(float(oldest) + self.window - now))
            await conn.execute(_HIT, {"k": key, "now": now})
            return None

        return await self.writer.run(job)
