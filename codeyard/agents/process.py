"""Agent CLIs as process groups: every agent runs as the leader of its own group, and stopping
it reaches the group and every descendant (found through ``/proc``), so no process of a
cancelled turn survives it — whichever provider started it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

__all__ = ["ProcessGroup"]

_PROC = Path("/proc")

Stat = tuple[str, int, int, int]


def _stat(pid: int) -> Stat | None:
    """(state, ppid, pgid, start time) of a process from ``/proc``, or None."""
    # os.open/os.read, not Path.read_text: a scan of every process (``members``) is several
    # times faster, and it runs on the event loop while a turn's agent is being stopped.
    try:
        fd = os.open(f"{_PROC}/{pid}/stat", os.O_RDONLY)
        try:
            raw = os.read(fd, 4096)
        finally:
            os.close(fd)
    except OSError:
        return None
    fields = raw[raw.rfind(b")") + 2 :].split()
    return fields[0].decode(), int(fields[1]), int(fields[2]), int(fields[19])


def _alive(pid: int) -> bool:
    if _PROC.is_dir():
        stat = _stat(pid)
        return stat is not None and stat[0] not in ("Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _all_stats() -> dict[int, Stat]:
    stats: dict[int, Stat] = {}
    if not _PROC.is_dir():
        return stats
    for name in os.listdir(_PROC):
        if name.isdigit():
            stat = _stat(int(name))
            if stat is not None:
                stats[int(name)] = stat
    return stats


class ProcessGroup:
    """The CLI's process group, led by ``pid``: stopped with escalating signals."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        #: Every member seen, with its start time (so a recycled pid is never signalled).
        self._known: dict[int, int] = {}

    def members(self) -> set[int]:
        """Live processes in the group or descending from it (Linux; elsewhere the leader).

        Descendants seen once stay members while they live, even after their parent died and
        they were re-parented outside the tree.
        """
        stats = _all_stats()
        if not stats:
            return {self.pid} if _alive(self.pid) else set()
        live = {p: s for p, s in stats.items() if s[0] not in ("Z", "X")}
        found = {p for p, s in live.items() if s[2] == self.pid}
        found |= {p for p, start in self._known.items() if p in live and live[p][3] == start}
        frontier = [self.pid, *found]
        while frontier:
            parent = frontier.pop()
            for pid, stat in live.items():
                if stat[1] == parent and pid not in found:
                    found.add(pid)
                    frontier.append(pid)
        self._known.update({p: live[p][3] for p in found})
        return found

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)
        for pid in self.members() - {self.pid}:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)

    async def _wait_gone(self, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if not self.members():
                return True
            if loop.time() >= deadline:
                return False
            # Scan every 50 ms; meanwhile look at the leader alone (one small read) every
            # 10 ms: its exit usually ends the group, and is then noticed within 10 ms, not 50
            # (a turn is complete only once its agent is gone; bench/overhead.py).
            scan_at = min(loop.time() + 0.05, deadline)
            leader = _alive(self.pid)
            while (now := loop.time()) < scan_at:
                await asyncio.sleep(min(0.01 if leader else 0.05, scan_at - now))
                if leader and not _alive(self.pid):
                    break

    async def stop(self, grace: float = 2.0) -> None:
        """Wait ``grace`` for a clean exit, then SIGINT, SIGTERM, SIGKILL (``grace`` each)."""
        if await self._wait_gone(grace):
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._signal(sig)
            if await self._wait_gone(grace):
                return
        self.kill()

    def kill(self) -> None:
        """SIGKILL the group and every live member (synchronous: safe while being cancelled)."""
        self._signal(signal.SIGKILL)
