"""Agent CLIs and run scripts as supervised process groups.

Every process a run starts (agent CLI, setup/cleanup script, the script agent's shell step) is
spawned by :func:`spawn` as the leader of its own process group, with ``PR_SET_PDEATHSIG`` so the
kernel kills it when the server dies, and is recorded (pgid, start time, boot id) through the
:data:`recorder` of the run that started it, so a restart after ``kill -9`` can stop the whole
group before the run is resumed. Stopping a group (:meth:`ProcessGroup.stop`) escalates from a
grace period through SIGINT and SIGTERM to SIGKILL, logs each step and why, and reaches every
descendant found through ``/proc`` — whichever provider started it (the groups themselves:
:mod:`codeyard.agents.process_group`; a dead server's groups, stopped at start-up:
:mod:`codeyard.agents.leftover_groups`; both re-exported here).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from codeyard.agents import piped
from codeyard.agents.leftover_groups import still_running, stop_leftovers
from codeyard.agents.process_group import (
    GroupRecord,
    GroupRecorder,
    ProcessGroup,
    boot_id,
    recorder,
)
from codeyard.sandbox import lifeline, priority

__all__ = [
    "GATE_PARENT_ENV",
    "SPAWN_WINDOW_ENV",
    "TIE_CHECK",
    "TIE_KEEPS",
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
]

log = logging.getLogger(__name__)

_SETPRIV = shutil.which("setpriv")


def pdeathsig_prefix() -> list[str]:
    """``setpriv --pdeathsig KILL --``: the kernel kills the child when the server dies, even
    by ``kill -9`` (the setting survives the exec into the real command). Empty where util-linux
    ``setpriv`` is missing; the start-up sweep of recorded groups still applies then."""
    return [_SETPRIV, "--pdeathsig", "KILL", "--"] if _SETPRIV else []


#: The environment variable that names the server to a child being tied to it.
GATE_PARENT_ENV = "CODEYARD_GATE_PARENT"

#: Shell for the first shell after ``setpriv`` of a launcher that does not go through
#: :func:`spawn`'s gate (Claude Code's: the SDK spawns it; its contained script runs this first,
#: ``launch.Contained.script``'s ``prelude``): a server that died before ``setpriv`` set the
#: death signal never signals, so the command must not start unless the parent is still the
#: server named by ``CODEYARD_GATE_PARENT``. It then opens the sandbox's lifeline on the server
#: (:mod:`codeyard.sandbox.lifeline`), whose variable the script must keep (:data:`TIE_KEEPS`).
TIE_CHECK = (
    f'if [ -n "${GATE_PARENT_ENV}" ]; then [ "$PPID" = "${GATE_PARENT_ENV}" ] || exit 125; '
    f"{lifeline.OPEN}else unset {lifeline.ENV}; fi; "
    f"unset {GATE_PARENT_ENV}"
)
#: What :data:`TIE_CHECK` sets for the command.
TIE_KEEPS = (lifeline.ENV,)


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
    "unset CODEYARD_GATE_FD CODEYARD_GATE_PARENT; "
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


def _renice(pid: int, niceness: int) -> None:
    """Add ``niceness`` to ``pid``'s (a child held at the gate: what it becomes and starts
    inherits it), as ``nice -n`` would from the server's own; a child already gone is left."""
    if niceness <= 0:
        return
    with contextlib.suppress(ProcessLookupError):
        own = os.getpriority(os.PRIO_PROCESS, 0)
        os.setpriority(os.PRIO_PROCESS, pid, min(19, own + niceness))


async def spawn(
    argv: Iterable[str], *, kind: str, lead: str = "", niceness: int = 0, **kwargs: Any
) -> tuple[asyncio.subprocess.Process, ProcessGroup]:
    """Start ``argv`` as the leader of a new process group tied to the server's life, and
    record the group on the current run before the command starts: it waits at a gate until
    the record is committed, so a crash at any moment leaves no unrecorded group behind.

    A ``Contained``'s ``lead`` and ``niceness`` (pass its ``bare`` argv): the gate's shell runs
    the lead in the new session, and the niceness is set on the child while it waits at the
    gate, so neither costs a program start of its own (``nice``, a ``/bin/sh``). ``kwargs``
    go to ``create_subprocess_exec``: :mod:`codeyard.agents.piped`'s, which starts the child
    with vfork rather than by forking the whole server as uvloop's would."""
    if recorder.get() is None:  # nothing to record: no gate, so both go in the chain
        niced = [*priority.shell(lead), *priority.task_prefix(niceness), *argv]
        proc = await piped.create_subprocess_exec(
            *pdeathsig_prefix(), *niced, start_new_session=True, **kwargs
        )
        return proc, ProcessGroup(proc.pid)
    window = Path(os.environ[SPAWN_WINDOW_ENV]) if os.environ.get(SPAWN_WINDOW_ENV) else None
    gate_r, gate_w = os.pipe()
    try:
        env = dict(kwargs.pop("env", None) or os.environ)
        env["CODEYARD_GATE_FD"] = str(gate_r)
        env[GATE_PARENT_ENV] = str(os.getpid())
        late = _late_start(window) if window is not None else []
        gate = _GATE + lead + 'exec "$@"'
        gated = [*late, *pdeathsig_prefix(), "/bin/bash", "-c", gate, "codeyard-gate", *argv]
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
        _renice(proc.pid, niceness)  # before the go: the command never runs un-niced
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
