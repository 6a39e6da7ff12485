"""Work that follows an event once per cluster, not once per API server (issue 16).

Every API server of one PostgreSQL database sees every committed event (``LISTEN/NOTIFY``
fan-out), so a follower that reacts to one, such as the after-turn checks or the push of a run
to its pull request, ran on each server: N check suites in one worktree, N pushes. Each
reaction now first claims ``<what>:<event id>`` by inserting that key into ``cluster_claims``
(migration ``0023``, PostgreSQL only); the insert that finds the key taken loses, so exactly one
server acts. Per event, not per server: no election to wait for, and a server going away
loses at most the reactions it had claimed (as one server crashing did before). Event ids are
unique across the cluster (a sequence). SQLite has one server process: every claim is won.
Claims older than :data:`KEEP_SECONDS` are deleted every :data:`SWEEP_EVERY` claims.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard.store.writer import Tx, Writer

__all__ = ["KEEP_SECONDS", "SWEEP_EVERY", "claim"]

KEEP_SECONDS = 86_400.0
SWEEP_EVERY = 500
_CLAIM = text(
    "INSERT INTO cluster_claims (key, at) VALUES (:k, extract(epoch FROM clock_timestamp())) "
    "ON CONFLICT (key) DO NOTHING"
)
_SWEEP = text("DELETE FROM cluster_claims WHERE at < extract(epoch FROM clock_timestamp()) - :keep")
_made = {"claims": 0}


async def claim(engine: AsyncEngine, writer: Writer, key: str) -> bool:
    """True for exactly one caller of ``key`` across the servers of the database."""
    if engine.dialect.name != "postgresql":
        return True
    _made["claims"] += 1
    sweep = _made["claims"] % SWEEP_EVERY == 0

    async def job(tx: Tx) -> bool:
        if sweep:
            await tx.conn.execute(_SWEEP, {"keep": KEEP_SECONDS})
        result = await tx.conn.execute(_CLAIM, {"k": key[:200]})
        return bool(result.rowcount == 1)

    return await writer.run(job)
