"""Agent CLIs and run scripts as supervised process groups.

Every process a run starts (agent CLI, setup/cleanup script, the script agent's shell step) is
spawned by :func:`spawn` as the leader of its own process group, with ``PR_SET_PDEATHSIG`` so the
kernel kills it when the server dies, and is recorded (pgid, start time, boot id) through the
:data:`recorder` of the run that started it, so a restart after ``kill -9`` can stop the whole
group before the run is resumed. Stopping a group (:meth:`ProcessGroup.stop`) escalates from a
grace period through SIGINT and SIGTERM to SIGKILL, logs each step and why, and reaches every
descendant found through ``/proc`` — whichever provider started it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
from collections import deque
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from codeyard.agents import piped
from codeyard.sandbox import lifeline

__all__ = [
    "GATE_PARENT_ENV",
    "SPAWN_WINDOW_ENV",
    "TIE_PARENT_ENV",
    "GroupRecord",
    "GroupRecorder",
    "ProcessGroup",
    "StderrRing",
    "boot_id",
    "explain",
    "fork_tie_prefix",
    "pdeathsig_prefix",
    "recorder",
    "spawn",
    "still_running",
    "stop_leftovers",
    "tied_prefix",
]

log = logging.getLogger(__name__)

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


def _children(pids: Iterable[int]) -> set[int] | None:
    """The direct children of ``pids`` (every thread's, from ``/proc/<pid>/task/<tid>/children``;
    a look at a few processes, not at all of them); None where the kernel has no such lists."""
    found: set[int] = set()
    for pid in pids:
        try:
            tids = os.listdir(f"{_PROC}/{pid}/task")
        except OSError:
            continue  # gone
        for tid in tids:
            try:
                fd = os.open(f"{_PROC}/{pid}/task/{tid}/children", os.O_RDONLY)
            except FileNotFoundError:
                if not os.path.exists(f"{_PROC}/{pid}/task/{tid}"):
                    continue  # the thread ended meanwhile
                return None  # no CONFIG_PROC_CHILDREN
            except OSError:
                continue
            try:
                raw = b""
                while chunk := os.read(fd, 65536):
                    raw += chunk
            except OSError:
                continue
            finally:
                os.close(fd)
            found.update(int(child) for child in raw.split())
    return found


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

_SETPRIV = shutil.which("setpriv")


def pdeathsig_prefix() -> list[str]:
    """``setpriv --pdeathsig KILL --``: the kernel kills the child when the server dies, even
    by ``kill -9`` (the setting survives the exec into the real command). Empty where util-linux
    ``setpriv`` is missing; the start-up sweep of recorded groups still applies then."""
    return [_SETPRIV, "--pdeathsig", "KILL", "--"] if _SETPRIV else []


#: The environment variable that names the server to a child being tied to it.
GATE_PARENT_ENV = "CODEYARD_GATE_PARENT"

_TIED = (
    f'if [ -n "${GATE_PARENT_ENV}" ]; then [ "$PPID" = "${GATE_PARENT_ENV}" ] || exit 125; '
    f"{lifeline.OPEN}else unset {lifeline.ENV}; fi; "
    f'unset {GATE_PARENT_ENV}; exec "$@"'
)


def tied_prefix() -> list[str]:
    """:func:`pdeathsig_prefix` and then a check that the parent is still the server named by
    ``CODEYARD_GATE_PARENT``: a server that died before ``setpriv`` set the death signal never
    signals, so the command must not start (for launchers that do not go through
    :func:`spawn`'s gate, such as Claude Code's). It then opens the sandbox's lifeline on the
    server (:mod:`codeyard.sandbox.lifeline`). Empty without ``setpriv``."""
    prefix = pdeathsig_prefix()
    return [*prefix, "/bin/sh", "-c", _TIED, "codeyard-tied"] if prefix else []


#: The environment variable by which a shell that forks a link of the chain names itself
#: (``$$``) to the child: :func:`fork_tie_prefix` checks it.
TIE_PARENT_ENV = "CODEYARD_TIE_PARENT"

_FORK_TIE = f'[ "$PPID" = "${TIE_PARENT_ENV}" ] || exit 125; unset {TIE_PARENT_ENV}; exec "$@"'


def fork_tie_prefix() -> list[str]:
    """For a command that a link of the chain starts by forking (a shell that runs it as a
    child, not through ``exec``): a fork clears the death signal, so the child sets its own
    (``setpriv``) and then checks that its parent is still the shell that forked it, named by
    ``CODEYARD_TIE_PARENT=$$`` (a parent that died first never signals: exit 125, the
    command never starts). Empty without ``setpriv``."""
    prefix = pdeathsig_prefix()
    return [*prefix, "/bin/sh", "-c", _FORK_TIE, "codeyard-fork-tie"] if prefix else []


class StderrRing:
    """The last lines a process wrote to stderr, for failure messages (bounded)."""

    def __init__(self, lines: int = 50) -> None:
        self.lines: deque[str] = deque(maxlen=lines)

    def append(self, text: str) -> None:
        if text.strip():
            self.lines.append(text.rstrip())

    async def read(self, stream: asyncio.StreamReader) -> None:
        while line := await stream.readline():
            self.append(line.decode("utf-8", "replace"))

    def clear(self) -> None:
        self.lines.clear()

    def explain(self, reason: str, last: int = 5) -> str:
        """``reason`` followed by the process's last few stderr lines not already in it."""
        return explain(reason, self.lines, last)


def explain(reason: str, lines: Iterable[str], last: int = 5) -> str:
    """A failure ``reason`` followed by the agent's last few stderr ``lines`` not already in it
    (what every provider tells the operator when its CLI fails)."""
    tail = [line for line in lines if line.strip() and line not in reason][-last:]
    return reason + (" Its last output: " + " | ".join(tail) if tail else "")


#: Holds the command until the parent says go (a byte on the inherited fd), then becomes it
#: (same pid, ``exec``): the group is on record before the command can do anything. It refuses
#: (exit 125, the command never starts) when the server is gone: its parent is no longer the
#: server (the server died before ``setpriv`` set ``PR_SET_PDEATHSIG``, so the kernel would
#: never kill it; ``$PPID`` is read when this shell starts, after ``setpriv``), or the pipe
#: ends without the go byte (the server died, or gave up, before the record was committed).
#: Released, it opens the sandbox's lifeline on the server (:mod:`codeyard.sandbox.lifeline`).
_GATE = (
    '[ "$PPID" = "$CODEYARD_GATE_PARENT" ] || exit 125; '
    'read -r -u "$CODEYARD_GATE_FD" _ || exit 125; exec {CODEYARD_GATE_FD}<&-; '
    f"{lifeline.OPEN}"
    'unset CODEYARD_GATE_FD CODEYARD_GATE_PARENT; exec "$@"'
)

#: Test hook (issue 12's spawn window): a directory. With it set, :func:`spawn` writes the
#: child's pid to ``<dir>/window`` and pauses before the group is recorded, and the child
#: itself waits for ``<dir>/go`` before ``setpriv`` runs (a child the scheduler had not yet run
#: when the server died), so a test can ``kill -9`` the server at exactly that moment.
SPAWN_WINDOW_ENV = "CODEYARD_TEST_SPAWN_WINDOW"


def _late_start(window: Path) -> list[str]:
    """The test hook's prefix: wait (at most 30 s) for ``<window>/go``, then go on."""
    wait = 'i=0; while [ ! -e "$0" ] && [ $i -lt 3000 ]; do sleep 0.01; i=$((i+1)); done; '
    return ["/bin/sh", "-c", wait + 'exec "$@"', str(window / "go")]


async def _pause_in_window(window: Path, pid: int) -> None:
    """The test hook's pause: say where we are, then wait (at most 60 s) to be killed."""
    (window / "window").write_text(str(pid))
    log.warning("test hook %s: pausing in the spawn window of pid %d", SPAWN_WINDOW_ENV, pid)
    await asyncio.sleep(60)


async def spawn(
    argv: Iterable[str], *, kind: str, **kwargs: Any
) -> tuple[asyncio.subprocess.Process, ProcessGroup]:
    """Start ``argv`` as the leader of a new process group tied to the server's life, and
    record the group on the current run before the command starts: it waits at a gate until
    the record is committed, so a crash at any moment leaves no unrecorded group behind.
    ``kwargs`` go to ``create_subprocess_exec``: :mod:`codeyard.agents.piped`'s, which starts
    the child with vfork rather than by forking the whole server as uvloop's would."""
    if recorder.get() is None:  # nothing to record: no gate needed
        proc = await piped.create_subprocess_exec(
            *pdeathsig_prefix(), *argv, start_new_session=True, **kwargs
        )
        return proc, ProcessGroup(proc.pid)
    window = Path(os.environ[SPAWN_WINDOW_ENV]) if os.environ.get(SPAWN_WINDOW_ENV) else None
    gate_r, gate_w = os.pipe()
    try:
        env = dict(kwargs.pop("env", None) or os.environ)
        env["CODEYARD_GATE_FD"] = str(gate_r)
        env[GATE_PARENT_ENV] = str(os.getpid())
        late = _late_start(window) if window is not None else []
        gated = [*late, *pdeathsig_prefix(), "/bin/bash", "-c", _GATE, "codeyard-gate", *argv]
        proc = await piped.create_subprocess_exec(
            *gated, start_new_session=True, pass_fds=(gate_r,), env=env, **kwargs
        )
    except BaseException:
        os.close(gate_w)
        raise
    finally:
        os.close(gate_r)
    group = ProcessGroup(proc.pid)
    try:
        if window is not None:
            await _pause_in_window(window, proc.pid)
        await group.track(kind)
    except BaseException:
        group.kill()  # never let an unrecorded group run
        raise
    finally:
        try:
            os.write(gate_w, b"\n")
        except BrokenPipeError:  # it died at the gate (killed): its exit is seen as usual
            log.info("process group %d (%s) was gone before it was released", proc.pid, kind)
        finally:
            os.close(gate_w)
    return proc, group


#: Seconds between scans of ``/proc`` while a group is awaited: descendants that start their
#: own session are found only while their parent lives.
SCAN_EVERY = 0.05
#: Seconds between looks at the members seen where there is no pidfd to wake on their exit.
POLL_EVERY = 0.01


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
        then a scan looks for members started meanwhile. Every :data:`SCAN_EVERY` meanwhile,
        the children of the members still alive are looked at (with pidfds; else a scan)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        exits = _Exits()
        try:
            while True:
                live = self.members()
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


def _leftovers(record: GroupRecord, stats: dict[int, Stat]) -> set[int]:
    """Live processes of a recorded group: in the group and started no earlier than its
    leader (a group id cannot be reused while any member lives); nothing when the group's id
    now belongs to a newer process."""
    if record.boot_id != boot_id():
        return set()
    leader = stats.get(record.pgid)
    if leader is not None and leader[3] != record.start_ticks:
        return set()  # the id now leads another process: the recorded group is long gone
    found = set()
    for pid, (state, _ppid, pgid, start) in stats.items():
        if state in ("Z", "X"):
            continue
        if pgid == record.pgid and start >= record.start_ticks:
            found.add(pid)
    return found


def still_running(records: Iterable[GroupRecord]) -> list[GroupRecord]:
    """The recorded groups that still have a live member."""
    stats = _all_stats()
    return [r for r in records if _leftovers(r, stats)]


async def stop_leftovers(records: Iterable[GroupRecord], timeout: float = 2.0) -> list[int]:
    """SIGKILL every live process of groups a dead server recorded, wait until they are gone
    (up to ``timeout``), and return their pids. A process that left its group (``setsid``) and
    outlived its parent cannot be told from a stranger and is not touched; the sandbox's
    ``--die-with-parent`` and the pid namespace cover those."""
    stats = _all_stats()
    victims: set[int] = set()
    for record in records:
        found = _leftovers(record, stats)
        if found:
            log.warning(
                "run process group %d (%s) outlived the last server: killing %s",
                record.pgid,
                record.kind,
                sorted(found),
            )
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(record.pgid, signal.SIGKILL)
            for pid in found:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            victims |= found
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    for _ in range(int(timeout / 0.02) + 1):
        if not any(_alive(p) for p in victims) or loop.time() >= deadline:
            break
        await asyncio.sleep(0.02)
    return sorted(victims)
