"""The CPU priority of what a run starts: below the server's, so the control plane comes first.

Every process a run starts (agent CLIs and their tools, scripts, the git of preparation) runs
``nice``d by ``agent_niceness`` (default 10): when the two cores are all taken, the server's
event loop (never niced) still gets them as soon as it wakes, so approvals, event delivery and
operator requests stay prompt under 60 agents.

``nice`` alone is not enough on Linux with ``sched_autogroup_enabled`` (the default on desktop
and many server kernels, and here): each session (``setsid``, which every run's process group
does) is then its own scheduling group, weighed against the server's as an equal whatever the
niceness of the tasks inside. So the launcher also lowers the priority of the new session's
group (``/proc/self/autogroup``). Without ``CAP_SYS_ADMIN`` the kernel takes that write at most
ten times a second across the host; a refused write is tried again for about half a second,
then given up (the task niceness still applies; :func:`state` reports whether autogroups are
on). Inside a cgroup with its own CPU controller (a systemd service, a container) autogroups
play no part and ``nice`` is all.
"""

from __future__ import annotations

import os
import shutil
from functools import cache
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_NICENESS",
    "autogroups",
    "group_prefix",
    "lower_group",
    "niceness_of",
    "prefix",
    "state",
    "task_prefix",
]

#: What a run's processes are niced by unless configured (``CODEYARD_AGENT_NICENESS``).
DEFAULT_NICENESS = 10

_AUTOGROUP_SWITCH = Path("/proc/sys/kernel/sched_autogroup_enabled")


@cache
def autogroups() -> bool:
    """Whether the kernel groups tasks by session for scheduling (``sched_autogroup``)."""
    try:
        return _AUTOGROUP_SWITCH.read_text().strip() == "1"
    except OSError:
        return False


@cache
def _nice() -> str | None:
    return shutil.which("nice")


def task_prefix(niceness: int) -> list[str]:
    """``nice -n N`` (nothing at 0): the command's tasks, inherited by all it starts."""
    nice = _nice()
    return [nice, "-n", str(niceness)] if niceness > 0 and nice is not None else []


def group_prefix(niceness: int) -> list[str]:
    """With autogroups on, a ``/bin/sh`` that lowers its session's group by ``niceness`` and
    becomes the command: it must run in the command's final session (inside bubblewrap, whose
    ``--new-session`` makes another)."""
    if niceness <= 0 or _nice() is None or not autogroups():
        return []
    # Inside bubblewrap the write lacks CAP_SYS_ADMIN, so the kernel takes one such write per
    # 100 ms host-wide and refuses the rest (EAGAIN; any write moves that window, the server's
    # own for preparation's git too): a refused write is tried again every 50 ms for at most
    # ~0.5 s, then the command keeps the task niceness alone. The tries run beside the command,
    # not before it (they cost a start ~100 ms when they waited): a process of the same session
    # (so of the same group), orphaned at once, so the command never has it as a child, and
    # holding none of its pipes (a reader waiting for end of file would wait for it).
    line = (
        f"( ( i=0; until echo {niceness} > /proc/self/autogroup; do "
        "[ $i -ge 10 ] && break; i=$((i+1)); sleep 0.05; done ) "
        "</dev/null >/dev/null 2>&1 & ); "
        'exec "$@"'
    )
    return ["/bin/sh", "-c", line, "codeyard-nice"]


def prefix(niceness: int) -> list[str]:
    """Both, for a command already in its own session (a run's process group, git)."""
    return [*group_prefix(niceness), *task_prefix(niceness)]


def lower_group(pid: int, niceness: int) -> None:
    """Lower the autogroup of ``pid``'s session by ``niceness`` from here, without a shell in
    the chain (~4 ms less per process than :func:`group_prefix`): for a short process that has
    just been started in its own session (git), best effort (it may be gone already, or the
    kernel's rate limit may refuse it)."""
    if niceness <= 0 or not autogroups():
        return
    try:
        with open(f"/proc/{pid}/autogroup", "w") as group:
            group.write(str(niceness))
    except OSError:
        pass


def niceness_of(pid: int) -> int | None:
    """The niceness of ``pid`` (``/proc/<pid>/stat``, field 19), None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return int(raw[raw.rfind(b")") + 2 :].split()[16])


def state(niceness: int) -> dict[str, Any]:
    """What ``doctor`` and the sandbox status report: the setting, whether it can apply here,
    and the server's own niceness (which must stay as it was started)."""
    return {
        "niceness": niceness,
        "applied": niceness > 0 and _nice() is not None,
        "autogroups": autogroups(),
        "server_niceness": os.getpriority(os.PRIO_PROCESS, 0),
    }
