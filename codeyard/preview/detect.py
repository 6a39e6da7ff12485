"""Listeners on leased ports become ``preview.port_opened`` events (and ``…_closed``).

A run's block is its own, so a listening socket on one of its ports belongs to the run's
process tree (its agent, setup script or terminal). The watcher polls the kernel's socket
tables (``psutil``) about once a second, only while leases exist.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard.preview import leases
from codeyard.preview.leases import Lease

log = logging.getLogger(__name__)

Report = Callable[[str, str, dict[str, object]], Awaitable[None]]


def listening_ports() -> set[int]:
    """TCP ports something listens on (IPv4 or IPv6, any address)."""
    import psutil  # first used once a lease exists, not at the server's start-up (issue 15)

    found: set[int] = set()
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr:
            found.add(int(conn.laddr.port))
    return found


class PortWatcher:
    def __init__(self, engine: AsyncEngine, report: Report, interval: float = 1.0) -> None:
        self._engine = engine
        self._report = report
        self.interval = interval
        #: (run id, port) pairs seen listening at the last poll.
        self.open: set[tuple[str, int]] = set()

    async def poll_once(self) -> None:
        async with self._engine.connect() as conn:
            held: list[Lease] = await leases.all_leases(conn)
        if not held and not self.open:
            return
        listening = await asyncio.to_thread(listening_ports) if held else set()
        now = {(lease.run_id, p) for lease in held for p in lease.ports if p in listening}
        index = {(lease.run_id, p): p - lease.base_port for lease in held for p in lease.ports}
        for run_id, port in sorted(now - self.open):
            i = index[(run_id, port)]
            await self._report(
                run_id,
                "preview.port_opened",
                {"port": port, "index": i, "path_url": f"/api/preview/{port}/"},
            )
        for run_id, port in sorted(self.open - now):
            if any(lease.run_id == run_id for lease in held):
                await self._report(run_id, "preview.port_closed", {"port": port})
        self.open = now

    async def run(self) -> None:
        while True:
            try:
                await self.poll_once()
            except Exception:  # a failed poll is retried; the watcher must keep going
                log.exception("preview port poll failed")
            await asyncio.sleep(self.interval)
