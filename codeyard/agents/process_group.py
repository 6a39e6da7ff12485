"""Process groups: found through ``/proc``, recorded across a server's death, stopped.

A group is identified by its leader's pid and start time in one boot (a pid alone may be
reused). Stopping one (:meth:`ProcessGroup.stop`) escalates from a grace period through SIGINT
and SIGTERM to SIGKILL, logs each step and why, and reaches every descendant found through
``/proc``, also those that left the group with a session of their own. What it reads of the
process tree (a process's stat, children lists, where an orphan goes) is
:mod:`codeyard.agents.process_tree`; stopping the groups a dead server recorded is
:mod:`codeyard.agents.leftover_groups`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

# The process tree's reads under the names ``ProcessGroup`` calls them by, in this module's
# globals: tests patch them here (``_all_stats``, ``_children``).
from codeyard.agents.process_tree import Stat
from codeyard.agents.process_tree import alive as _alive
from codeyard.agents.process_tree import all_stats as _all_stats
from codeyard.agents.process_tree import children as _children
from codeyard.agents.process_tree import orphan_adopters as _adopters
from codeyard.agents.process_tree import orphans_parents_children as _orphans_parents_children
from codeyard.agents.process_tree import read_stat as _stat

log = logging.getLogger(__name__)


def boot_id() -> str:
    """This boot's id: start times (clock ticks since boot) only compare within one boot."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


@dataclass(frozen=True, slots=True)
class GroupRecord:
    """What identifies a process group across a server's death: a pid can be reused, a pid
    together with its start time in one boot cannot."""

    pgid: int
    start_ticks: int
    boot_id: str
    kind: str


class GroupRecorder(Protocol):
    """Where a run's process groups are recorded durably (the executor's run, per task)."""

    async def started(self, record: GroupRecord) -> None: ...

    async def ended(self, record: GroupRecord) -> None: ...


#: The recorder of the run being worked on in this task (unset: nothing is recorded).
recorder: ContextVar[GroupRecorder | None] = ContextVar("codeyard_process_recorder", default=None)


#: Seconds between scans of ``/proc`` while a group is awaited: descendants that start their
#: own session are found only while their parent lives.
SCAN_EVERY = 0.05
#: Seconds between looks at the members seen where there is no pidfd to wake on their exit.
POLL_EVERY = 0.01
#: Looks, this many seconds apart, at a group whose tree is gone but whose exited leader is
#: not reaped yet, before a scan of every process settles whether anything else is left.
REAP_LOOKS, REAP_LOOK_EVERY = 5, 0.002


class _Exits:
    """Waits for processes to exit, each woken by its pidfd on the loop (Linux >= 5.3).

    A pidfd turns readable once its process has exited (a zombie included), so the last
    member's exit is noticed at once instead of at the next scan of ``/proc``.
    """

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._fds: dict[int, int] = {}
        self._all_gone = asyncio.Event()

    def watch(self, members: Mapping[int, int | None]) -> bool:
        """Watch ``members`` (pid → start time, None: not known) not watched yet; False where
        there is no pidfd (the caller polls instead)."""
        for pid, start in members.items():
            if pid in self._fds:
                continue
            try:
                fd = os.pidfd_open(pid)
            except ProcessLookupError:
                continue  # gone already
            except (AttributeError, OSError):
                return False
            stat = _stat(pid)  # the fd names the process seen by the scan, not a newer one
            if start is not None and (stat is None or stat[3] != start or stat[0] in "ZX"):
                os.close(fd)
                continue
            self._fds[pid] = fd
            self._loop.add_reader(fd, self._exited, pid)
        if self._fds:
            self._all_gone.clear()
        else:
            self._all_gone.set()
        return True

    @property
    def watched(self) -> set[int]:
        """The processes watched and not seen exit yet."""
        return set(self._fds)

    def _exited(self, pid: int) -> None:
        fd = self._fds.pop(pid)
        self._loop.remove_reader(fd)
        os.close(fd)
        if not self._fds:
            self._all_gone.set()

    async def all_gone(self, timeout: float) -> None:
        """Until every watched process has exited, or ``timeout``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._all_gone.wait(), max(timeout, 0))

    def close(self) -> None:
        for fd in self._fds.values():
            self._loop.remove_reader(fd)
            os.close(fd)
        self._fds.clear()


class ProcessGroup:
    """A process group led by ``pid``: recorded, watched and stopped with escalating signals."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        #: Every member seen, with its start time (so a recycled pid is never signalled).
        self._known: dict[int, int] = {}
        #: The leader's start time when this object was made (None: already gone). Pids wrap
        #: quickly (``pid_max`` is 32,768 on many hosts): once another process holds ``pid``,
        #: the group is gone, and neither that process nor its children are ours.
        leader = _stat(pid)
        self._leader_start = leader[3] if leader is not None else None
        self.record: GroupRecord | None = None
        self._recorder: GroupRecorder | None = None

    async def track(self, kind: str) -> None:
        """Record this group on the current run (see :data:`recorder`) until :meth:`untrack`."""
        target = recorder.get()
        stat = _stat(self.pid)
        if target is None or stat is None:
            return
        self.record = GroupRecord(self.pid, stat[3], boot_id(), kind)
        self._recorder = target
        await target.started(self.record)

    async def untrack(self) -> None:
        """The group is gone: drop its record (shielded, so a cancelled stop still does it)."""
        record, target = self.record, self._recorder
        self.record = self._recorder = None
        if record is not None and target is not None:
            await asyncio.shield(target.ended(record))

    def members(self) -> set[int]:
        """Live processes in the group or descending from it (Linux; elsewhere the leader).

        Descendants seen once stay members while they live, even after their parent died and
        they were re-parented outside the tree.
        """
        stats = _all_stats()
        if not stats:
            return {self.pid} if _alive(self.pid) else set()
        live = {p: s for p, s in stats.items() if s[0] not in ("Z", "X")}
        found = {p for p, start in self._known.items() if p in live and live[p][3] == start}
        if self._id_reused(live.get(self.pid)):
            frontier = list(found)
        else:
            found |= {p for p, s in live.items() if s[2] == self.pid}
            frontier = [self.pid, *found]
        while frontier:
            parent = frontier.pop()
            for pid, stat in live.items():
                if stat[1] == parent and pid not in found:
                    found.add(pid)
                    frontier.append(pid)
        self._known.update({p: live[p][3] for p in found})
        return found

    async def _look(self) -> set[int]:
        """The live members, found without a scan of every process where that is enough:
        the leader and the members seen before, with their descendants through the children
        lists. Where that finds none, a group with no process left (one ``kill(2)``) is gone;
        anything else, or no children lists, is settled by :meth:`members`. A member outside
        that tree (its parent died, so it was re-parented) is found by that scan once the
        tree is gone, and waited for then."""
        roots = {
            p
            for p, start in self._known.items()
            if (stat := _stat(p)) is not None and stat[0] not in ("Z", "X") and stat[3] == start
        }
        leader = _stat(self.pid)
        if leader is not None and leader[0] not in ("Z", "X") and not self._id_reused(leader):
            self._known[self.pid] = leader[3]
            roots.add(self.pid)
        born = self._born(roots)
        if born is None:
            return self.members()
        if roots or born:
            return roots | born.keys()
        for _ in range(REAP_LOOKS):
            if self._group_empty():
                return set()
            leader = _stat(self.pid)
            if leader is None or leader[0] != "Z":
                break
            # Only the leader's zombie may hold the group: whoever started it reaps it now.
            await asyncio.sleep(REAP_LOOK_EVERY)
        adopted = self._adopted()
        return self.members() if adopted is None else adopted

    def _adopted(self) -> set[int] | None:
        """Live members outside the tree seen so far, found without a scan of every process
        (None: only a scan can tell). A member whose parent died was re-parented to the
        nearest child subreaper above it, else to init: for a group this process started,
        that is this process (when it is a subreaper) or one of its ancestors. So the members
        left are the children of those in the group, and their descendants. Where the group
        is held only by zombies (a container's init that reaps nothing keeps the sandbox's
        exited init), this reads a few children lists instead of every process's stat."""
        if self._id_reused(_stat(self.pid)):
            return None  # the id may name a newer group now: only the members seen count
        adopters = _adopters()
        children = _orphans_parents_children(adopters) if adopters else None
        if children is None:
            return None
        adopted: dict[int, int] = {}
        for pid in children:
            stat = _stat(pid)
            if stat is not None and stat[0] not in ("Z", "X") and stat[2] == self.pid:
                adopted[pid] = stat[3]
        self._known.update(adopted)
        born = self._born(set(adopted))
        if born is None:
            return None
        return adopted.keys() | born.keys()

    def _group_empty(self) -> bool:
        """Whether no process is left in the group (a zombie still counts; a member of another
        user cannot be told: not empty)."""
        if self._id_reused(_stat(self.pid)):
            return False  # the id may name a newer group now: only a scan can tell
        try:
            os.killpg(self.pid, 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False
        return False

    def _born(self, parents: set[int]) -> dict[int, int] | None:
        """Live descendants of ``parents`` not known yet (pid → start time), recorded as
        members; None where ``/proc`` has no children lists (the caller scans everything)."""
        born: dict[int, int] = {}
        frontier = parents
        while frontier:
            children = _children(frontier)
            if children is None:
                return None
            frontier = set()
            for pid in children - parents - born.keys():
                stat = _stat(pid)
                if stat is None or stat[0] in ("Z", "X"):
                    continue
                if self._known.get(pid) != stat[3]:
                    born[pid] = stat[3]
                frontier.add(pid)
            parents = parents | frontier
        self._known.update(born)
        return born

    def interrupt(self) -> None:
        """SIGINT to the group and every member now: for agents that do not exit when their
        input ends (Codex's ACP adapter), so a turn's end need not wait out ``stop``'s grace."""
        self._signal(signal.SIGINT)

    def _id_reused(self, leader: Stat | None) -> bool:
        """Whether ``pid`` now belongs to a newer process (Linux frees a group's id only once
        the group is empty, so the group is then gone)."""
        return leader is not None and self._leader_start not in (None, leader[3])

    def _signal(self, sig: signal.Signals) -> None:
        if not self._id_reused(_stat(self.pid)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, sig)
        for pid in self.members() - {self.pid}:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)

    async def _wait_gone(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for every member to be gone: woken by the exit of the last
        one seen (pidfds; where there are none, each is looked at every :data:`POLL_EVERY`),
        then a look for members started meanwhile (:meth:`_look`: a scan of every process
        only where the group is not seen empty otherwise). Every :data:`SCAN_EVERY` meanwhile,
        the children of the members still alive are looked at (with pidfds; else a scan)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        exits = _Exits()
        try:
            while True:
                live = await self._look()
                if not live:
                    return True
                left = deadline - loop.time()
                if left <= 0:
                    return False
                if exits.watch({p: self._known.get(p) for p in live}):
                    await self._follow(exits, deadline)
                    continue
                # No pidfds: look at the members seen (cheap) until they are gone or it is
                # time to scan again.
                scan_at = loop.time() + min(SCAN_EVERY, left)
                while live and (now := loop.time()) < scan_at:
                    await asyncio.sleep(min(POLL_EVERY, scan_at - now))
                    live = {p for p in live if _alive(p)}
        finally:
            exits.close()

    async def _follow(self, exits: _Exits, deadline: float) -> None:
        """Until every watched member has exited, or ``deadline``: every :data:`SCAN_EVERY`,
        the children of those still alive are looked at and new ones watched too (descendants
        that start their own session are found only while their parent lives). That look
        reads the children lists of a few processes; a scan of every process in ``/proc``
        (``members``, the caller's, after this) costs ms with many agents running. Returns
        early where there are no children lists: the caller scans instead."""
        loop = asyncio.get_running_loop()
        while (left := deadline - loop.time()) > 0:
            await exits.all_gone(min(SCAN_EVERY, left))
            watched = exits.watched
            if not watched:
                return
            born = self._born(watched)
            if born is None:
                return
            if born and not exits.watch(born):
                return

    async def stop(self, grace: float = 2.0, why: str = "stopping") -> bool:
        """Wait ``grace`` for a clean exit, then SIGINT, SIGTERM, SIGKILL (``grace`` each);
        every escalation is logged with ``why`` and what was still alive. True when the group
        was seen gone (no SIGKILL was needed)."""
        if await self._wait_gone(grace):
            return True
        for sig in (signal.SIGINT, signal.SIGTERM):
            log.info(
                "process group %d (%s): %s; still alive after %gs, sending %s to %s",
                self.pid,
                self._kind,
                why,
                grace,
                sig.name,
                sorted(self.members()),
            )
            self._signal(sig)
            if await self._wait_gone(grace):
                return True
        log.warning(
            "process group %d (%s): %s; SIGTERM was ignored for %gs, killing %s",
            self.pid,
            self._kind,
            why,
            grace,
            sorted(self.members()),
        )
        self.kill()
        return False

    @property
    def _kind(self) -> str:
        return self.record.kind if self.record is not None else "untracked"

    def kill(self) -> None:
        """SIGKILL the group and every live member (synchronous: safe while being cancelled)."""
        self._signal(signal.SIGKILL)
