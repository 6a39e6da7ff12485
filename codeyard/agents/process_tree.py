"""The process tree as ``/proc`` shows it, and where an orphan goes: what
:class:`~codeyard.agents.process_group.ProcessGroup` reads to find a group's members.

A process's state, parent, group and start time (:func:`read_stat`), every process's
(:func:`all_stats`: a scan, ms with many agents running), the children lists of a few
(:func:`children`), and the processes an orphan of one this server started is re-parented to
(:func:`orphan_adopters`, and their children among which it is: :func:`orphans_parents_children`).
Apart from ``agents.process_group`` because none of it knows about groups, records or signals:
plain reads of the kernel's view through ``/proc`` (Linux; elsewhere they find nothing, and
:func:`alive` asks ``kill(pid, 0)``).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = [
    "Stat",
    "alive",
    "all_stats",
    "children",
    "orphan_adopters",
    "orphans_parents_children",
    "read_stat",
]

_PROC = Path("/proc")

Stat = tuple[str, int, int, int]


def read_stat(pid: int) -> Stat | None:
    """(state, ppid, pgid, start time) of a process from ``/proc``, or None."""
    # os.open/os.read, not Path.read_text: a scan of every process (``ProcessGroup.members``)
    # is several times faster, and it runs on the event loop while a turn's agent is being
    # stopped.
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


def alive(pid: int) -> bool:
    if _PROC.is_dir():
        stat = read_stat(pid)
        return stat is not None and stat[0] not in ("Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def all_stats() -> dict[int, Stat]:
    stats: dict[int, Stat] = {}
    if not _PROC.is_dir():
        return stats
    for name in os.listdir(_PROC):
        if name.isdigit():
            stat = read_stat(int(name))
            if stat is not None:
                stats[int(name)] = stat
    return stats


class _NoChildrenLists(Exception):
    """The kernel has no ``/proc/<pid>/task/<tid>/children`` (no ``CONFIG_PROC_CHILDREN``)."""


def _thread_children(pid: int, tid: int) -> list[int]:
    """The children of one thread of ``pid`` (none when it is gone)."""
    try:
        fd = os.open(f"{_PROC}/{pid}/task/{tid}/children", os.O_RDONLY)
    except FileNotFoundError:
        if not os.path.exists(f"{_PROC}/{pid}/task/{tid}"):
            return []  # the thread ended meanwhile
        raise _NoChildrenLists from None
    except OSError:
        return []
    try:
        raw = b""
        while chunk := os.read(fd, 65536):
            raw += chunk
    except OSError:
        return []
    finally:
        os.close(fd)
    return [int(child) for child in raw.split()]


def children(pids: Iterable[int]) -> set[int] | None:
    """The direct children of ``pids`` (every thread's, from ``/proc/<pid>/task/<tid>/children``;
    a look at a few processes, not at all of them); None where the kernel has no such lists."""
    found: set[int] = set()
    try:
        for pid in pids:
            try:
                tids = os.listdir(f"{_PROC}/{pid}/task")
            except OSError:
                continue  # gone
            for tid in tids:
                found.update(_thread_children(pid, int(tid)))
    except _NoChildrenLists:
        return None
    return found


def orphans_parents_children(adopters: Iterable[int]) -> set[int] | None:
    """The children of ``adopters`` among which an orphan re-parented to them is: each one's
    main thread's list. Linux hands an orphan to the first thread of its new parent that is
    not exiting (``find_alive_thread``), the main thread while it lives; every thread's list
    is read only where the main thread has exited (a zombie leader). Reading every thread's
    list of every adopter (the server's ancestors up to init: here init alone has 40
    threads) cost each turn's stop ~50 reads on the event loop. None: no children lists."""
    found: set[int] = set()
    exited: list[int] = []
    try:
        for pid in adopters:
            stat = read_stat(pid)
            if stat is None:
                continue  # gone
            if stat[0] in ("Z", "X"):
                exited.append(pid)
                continue
            found.update(_thread_children(pid, pid))
    except _NoChildrenLists:
        return None
    if exited:
        rest = children(exited)
        if rest is None:
            return None
        found |= rest
    return found


_PR_GET_CHILD_SUBREAPER = 37


@functools.cache
def _libc() -> Any:
    """libc through ctypes (imported here: ctypes costs the serve path's start ~1.5 ms)."""
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def _subreaper() -> bool:
    """Whether this process adopts its descendants' orphans (``PR_SET_CHILD_SUBREAPER``; if
    that cannot be asked: assumed so)."""
    try:
        import ctypes

        libc = _libc()
        flag = ctypes.c_int()
        if libc.prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0) != 0:
            return True
    except (OSError, AttributeError):
        return True
    return bool(flag.value)


def orphan_adopters() -> list[int]:
    """Where an orphan of a process this one started goes: this process when it is a child
    subreaper or init itself (a container's first process), and each of its ancestors up to
    init (the nearest subreaper above the dead parent, else init). Empty without ``/proc``."""
    found = [os.getpid()] if os.getpid() == 1 or _subreaper() else []
    pid = os.getppid()
    while pid > 0 and pid not in found:
        stat = read_stat(pid)
        if stat is None:
            return []
        found.append(pid)
        pid = stat[1]
    return found
