"""The server's CPU by thread: each Python thread names its OS thread, the bench reads
``/proc/<pid>/task/*``.

Python 3.11 does not name OS threads, so ``/proc/<pid>/task/<tid>/comm`` shows the process's
name for every thread. ``bench/_timed_server.py`` calls :func:`install` when ``BENCH_THREADS``
is set: every thread started after it (and the main thread, ``loop``) sets its own name with
``prctl(PR_SET_NAME)`` to its kind: the thread's name without its number (a pool's workers,
``codeyard-git_3`` → ``codeyard-git``), or its class for a bare ``Thread-N`` (aiosqlite's
connection thread → ``Connection``). Names are cut at 15 bytes by the kernel.

:func:`thread_ticks` reads each live thread's name and utime + stime. A thread that exits
between two reads takes its last ticks with it; the bench's sampler keeps the last seen, and
the process's total minus the sum of what it saw is reported as ``unseen``.
"""

from __future__ import annotations

import contextlib
import ctypes
import re
import threading
from pathlib import Path

PR_SET_NAME = 15
_NUMBERED = re.compile(r"[-_]\d+$")


def kind(thread: threading.Thread) -> str:
    if thread is threading.main_thread():
        return "loop"
    name = thread.name
    if name.startswith("Thread-"):  # a bare Thread or a subclass without a name of its own
        target = getattr(thread, "_target", None)
        label = getattr(target, "__qualname__", None) if target is not None else None
        return str(label or type(thread).__name__)
    while _NUMBERED.search(name):
        name = _NUMBERED.sub("", name)
    return name


def _set_name(name: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)


def install() -> None:
    """Name the main thread and every thread started from now on."""
    _set_name("loop")
    bootstrap = threading.Thread._bootstrap_inner  # type: ignore[attr-defined]

    def named(self: threading.Thread) -> None:
        with contextlib.suppress(OSError):
            _set_name(kind(self))
        bootstrap(self)

    threading.Thread._bootstrap_inner = named  # type: ignore[attr-defined]


def thread_ticks(pid: int) -> dict[int, tuple[str, int]]:
    """tid → (name, utime + stime in ticks) of each live thread of ``pid``."""
    out: dict[int, tuple[str, int]] = {}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return out
    for task in tasks:
        try:
            raw = (task / "stat").read_text()
        except OSError:
            continue
        head, _, rest = raw.rpartition(")")
        f = rest.split()
        out[int(task.name)] = (head.partition("(")[2], int(f[11]) + int(f[12]))
    return out
