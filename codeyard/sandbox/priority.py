"""The CPU priority of what a run starts: below the server's, so the control plane comes first.

Every process a run starts (agent CLIs and their tools, scripts, the git of preparation) runs
``nice``d by ``agent_niceness`` (default 10): when the two cores are all taken, the server's
event loop (never niced) still gets them as soon as it wakes, so approvals, event delivery and
operator requests stay prompt under 60 agents.

``nice`` alone is not enough on Linux with ``sched_autogroup_enabled`` (the default on desktop
and many server kernels, and here): each session (``setsid``, which every run's process group
does) is then its own scheduling group, weighed against the server's as an equal whatever the
niceness of the tasks inside. So the launcher also lowers the priority of the new session's
group (``/proc/<pid>/autogroup``). A process with ``CAP_SYS_ADMIN`` (a server running as root)
may make that write as often as it likes; without it the kernel takes it at most ten times a
second across the host, and any write moves that window. So the write is made where the
server's privileges still hold: outside bubblewrap (which drops every capability), in the
session the server started the command in, which the sandbox then keeps (no ``--new-session``:
``launch.contain``'s ``own_session``). Without the privilege (a server not run as root), or
where the command's session is made inside the sandbox (a terminal), a refused write is tried
again for about half a second, then given up (the task niceness still applies; :func:`state`
reports whether autogroups are on and whether the writes are privileged). Inside a cgroup with
its own CPU controller (a systemd service, a container) autogroups play no part and ``nice`` is
all.
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
    "group_line",
    "group_prefix",
    "lower_group",
    "niceness_of",
    "prefix",
    "privileged",
    "shell",
    "state",
    "task_prefix",
]

#: What a run's processes are niced by unless configured (``CODEYARD_AGENT_NICENESS``).
DEFAULT_NICENESS = 10

_AUTOGROUP_SWITCH = Path("/proc/sys/kernel/sched_autogroup_enabled")
#: The capability that lifts the kernel's rate limit on autogroup writes (linux/capability.h).
_CAP_SYS_ADMIN = 21


@cache
def autogroups() -> bool:
    """Whether the kernel groups tasks by session for scheduling (``sched_autogroup``)."""
    try:
        return _AUTOGROUP_SWITCH.read_text().strip() == "1"
    except OSError:
        return False


@cache
def privileged() -> bool:
    """Whether this process (and so what it starts outside the sandbox) holds
    ``CAP_SYS_ADMIN``: its autogroup writes are then never refused by the rate limit."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> _CAP_SYS_ADMIN & 1)
    return False


@cache
def _nice() -> str | None:
    return shutil.which("nice")


def task_prefix(niceness: int) -> list[str]:
    """``nice -n N`` (nothing at 0): the command's tasks, inherited by all it starts."""
    nice = _nice()
    return [nice, "-n", str(niceness)] if niceness > 0 and nice is not None else []


def group_line(niceness: int, *, privileged_write: bool | None = None) -> str:
    """With autogroups on, the shell (ending in ``; ``) that lowers its session's group by
    ``niceness``: it must run in the command's final session (outside bubblewrap when the
    sandbox keeps the caller's session, inside when ``--new-session`` makes another), in a
    shell of the chain that then ``exec``s the command (:func:`group_prefix`'s own, or one the
    starter already runs: the spawn gate, Claude Code's contained script). Empty otherwise.

    ``privileged_write``: whether the write is made with ``CAP_SYS_ADMIN`` (default: whether
    this process holds it; False inside bubblewrap, which drops it)."""
    if niceness <= 0 or _nice() is None or not autogroups():
        return ""
    if privileged() if privileged_write is None else privileged_write:
        # Never refused: written once, before the command starts, so it starts lowered.
        return f"{{ echo {niceness} > /proc/self/autogroup; }} 2>/dev/null; "
    # Without CAP_SYS_ADMIN the kernel takes one such write per 100 ms host-wide and refuses
    # the rest (EAGAIN; any write moves that window, the server's own for preparation's git
    # too): a refused write is tried again every 50 ms for at most ~0.5 s, then the command
    # keeps the task niceness alone. The tries run beside the command, not before it (they
    # cost a start ~100 ms when they waited): a process of the same session (so of the same
    # group), orphaned at once, so the command never has it as a child, and holding none of
    # its pipes (a reader waiting for end of file would wait for it).
    return (
        f"( ( i=0; until echo {niceness} > /proc/self/autogroup; do "
        "[ $i -ge 10 ] && break; i=$((i+1)); sleep 0.05; done ) "
        "</dev/null >/dev/null 2>&1 & ); "
    )


def shell(line: str) -> list[str]:
    """A ``/bin/sh`` that runs ``line`` (a :func:`group_line`) and becomes the command that
    follows it; nothing for an empty line."""
    return ["/bin/sh", "-c", line + 'exec "$@"', "codeyard-nice"] if line else []


def group_prefix(niceness: int, *, privileged_write: bool | None = None) -> list[str]:
    """:func:`group_line` in a ``/bin/sh`` of its own that then becomes the command."""
    return shell(group_line(niceness, privileged_write=privileged_write))


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
        "privileged": privileged(),
        "server_niceness": os.getpriority(os.PRIO_PROCESS, 0),
    }
