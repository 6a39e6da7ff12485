"""Listeners on leased ports become ``preview.port_opened`` events (and ``…_closed``).

A run's block is its own, so a listening socket on one of its ports belongs to the run's
process tree (its agent, setup script or terminal). The watcher asks the kernel for its
listening TCP sockets about once a second, only while leases exist (kept in memory, read again
when one is taken or ended): on Linux through the
``sock_diag`` netlink interface (what ``ss -lt`` uses), filtered to listeners by the kernel, so
the cost does not grow with the machine's connections or processes (0.05 ms of CPU).
``psutil.net_connections`` (the fallback elsewhere) reads the whole ``/proc/net/tcp`` table
(~7 ms of CPU here: the kernel walks every connection bucket) and every process's file
descriptors (~3 ms); with 20 agents running that was 15 % of the server's CPU samples.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import socket
import struct
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard.preview import leases
from codeyard.preview.leases import Lease
from codeyard.store import wakeups

log = logging.getLogger(__name__)

Report = Callable[[str, str, dict[str, object]], Awaitable[None]]


def listening_ports() -> set[int]:
    """TCP ports something listens on (IPv4 or IPv6, any address), in this network namespace."""
    try:
        return _from_sock_diag()
    except (AttributeError, OSError):  # not Linux, or netlink refused
        return _from_psutil()


async def listening_ports_now() -> set[int]:
    """:func:`listening_ports` for the event loop: netlink's answer (~0.05 ms, the kernel
    answers at once) where it is asked, psutil's scan (~10 ms) in a worker thread: a trip to
    one and back cost the loop more than the netlink query, every second."""
    try:
        return _from_sock_diag()
    except (AttributeError, OSError):
        return await asyncio.to_thread(_from_psutil)


# linux/netlink.h, linux/sock_diag.h, linux/inet_diag.h
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST, _NLM_F_DUMP = 0x1, 0x300
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_TCP_LISTEN = 10
_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, seq, pid
#: inet_diag_req_v2: family, protocol, extensions, pad, states; then a zeroed inet_diag_sockid
_REQUEST = struct.Struct("=BBBxI48x")
#: the start of inet_diag_msg: family, state, timer, retransmits, then the source port
_LISTENER = struct.Struct("!BBBBH")  # network order (the port is big-endian)


def _from_sock_diag() -> set[int]:
    found: set[int] = set()
    with socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG) as nl:
        for seq, family in enumerate((socket.AF_INET, socket.AF_INET6), start=1):
            body = _REQUEST.pack(family, socket.IPPROTO_TCP, 0, 1 << _TCP_LISTEN)
            flags = _NLM_F_REQUEST | _NLM_F_DUMP
            nl.send(
                _HEADER.pack(_HEADER.size + len(body), _SOCK_DIAG_BY_FAMILY, flags, seq, 0) + body
            )
            found |= _read_dump(nl)
    return found


def _read_dump(nl: socket.socket) -> set[int]:
    ports: set[int] = set()
    while True:
        data = nl.recv(1 << 16)
        offset = 0
        while offset + _HEADER.size <= len(data):
            length, kind, _, _, _ = _HEADER.unpack_from(data, offset)
            if kind == _NLMSG_DONE:
                return ports
            if kind == _NLMSG_ERROR:
                (error,) = struct.unpack_from("=i", data, offset + _HEADER.size)
                raise OSError(-error, "sock_diag refused the request")
            if length < _HEADER.size + _LISTENER.size:
                raise OSError("sock_diag sent a message too short to read")
            ports.add(_LISTENER.unpack_from(data, offset + _HEADER.size)[4])
            offset += (length + 3) & ~3


def _from_psutil() -> set[int]:
    import psutil  # first used once a lease exists, not at the server's start-up (issue 15)

    found: set[int] = set()
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr:
            found.add(int(conn.laddr.port))
    return found


def _leased(held: list[Lease], listening: set[int]) -> dict[tuple[str, int], int]:
    """(run id, port) → the port's index in its run's block, for each listening port inside a
    lease: each listening port is looked up among the leases by their first port (blocks do
    not overlap), not every leased port against the listening ones (a thousand runs hold
    tens of thousands of ports; this runs every second on the event loop)."""
    blocks = sorted(held, key=lambda lease: lease.base_port)
    starts = [lease.base_port for lease in blocks]
    found: dict[tuple[str, int], int] = {}
    for port in listening:
        k = bisect.bisect_right(starts, port) - 1
        if k >= 0 and port in blocks[k].ports:
            found[(blocks[k].run_id, port)] = port - blocks[k].base_port
    return found


class PortWatcher:
    """Reports listeners on leased ports, looking about once a second while leases exist.

    The leases are kept in memory and read again only when they change (``store.wakeups``,
    topic ``port_leases``: a lease taken or ended here or, on PostgreSQL, anywhere), not at
    every look (issue 15: a read of every lease each second was a good part of an idle
    server's statements). A lease ended wakes the watcher before its transaction commits, so
    a change is read at two looks in a row. While a change might go unheard
    (:func:`wakeups.hearing` is false) they are read at every look, as before; with no lease
    and no listener the watcher sleeps until a lease is taken."""

    def __init__(self, engine: AsyncEngine, report: Report, interval: float = 1.0) -> None:
        self._engine = engine
        self._report = report
        self.interval = interval
        #: (run id, port) pairs seen listening at the last poll.
        self.open: set[tuple[str, int]] = set()
        #: The leases as last read (None: not read yet), and how many looks still read them.
        self._held: list[Lease] | None = None
        self._stale = 0
        self._woken = asyncio.Event()
        #: Reads of the leases (tests and diagnostics).
        self.reads = 0

    def wake(self) -> None:
        """The leases changed (or are about to, in a transaction not yet committed)."""
        self._stale = 2
        self._woken.set()

    async def _leases(self) -> list[Lease]:
        held = self._held
        if held is None or self._stale > 0 or not wakeups.hearing(self._engine):
            stale = self._stale
            held = self._held = await leases.all_leases(self._engine)
            self.reads += 1
            if self._stale == stale:  # (a wake during the read counts from now)
                self._stale = max(0, stale - 1)
        return held

    async def poll_once(self) -> None:
        held = await self._leases()
        if not held and not self.open:
            return
        listening = await listening_ports_now() if held else set()
        index = _leased(held, listening)
        now = set(index)
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

    def _idle(self) -> bool:
        """Nothing to look for until a lease is taken (which wakes the watcher)."""
        return (
            not self._held
            and not self.open
            and not self._stale
            and self._held is not None
            and wakeups.hearing(self._engine)
        )

    async def run(self) -> None:
        unfollow = wakeups.follow(self._engine, wakeups.PORT_LEASES, self.wake)
        try:
            while True:
                self._woken.clear()
                try:
                    await self.poll_once()
                except Exception:  # a failed poll is retried; the watcher must keep going
                    log.exception("preview port poll failed")
                if self._idle():
                    await self._woken.wait()
                else:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._woken.wait(), self.interval)
        finally:
            unfollow()
