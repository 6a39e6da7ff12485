"""A stand-in server that starts one run process the way Codeyard does, to be ``kill -9``ed.

``python -c STAND_IN <how> <sandbox on|off>`` in a directory starts a shell step that writes
``start`` and, 0.3 s later, ``end`` to ``marks`` in that directory, through one of the chains a
real server uses, and prints the pid of the process it spawned (the chain's first link):

- ``step``: the script agent's ``bash`` step (spawn gate, then a shell that forks the contained
  command so it can mark its end);
- ``agent``: an agent CLI as Codex and ACP agents start (the gate ``exec``s bubblewrap);
- ``claude``: Claude Code's launcher, spawned without the gate as the SDK does, which runs the
  contained command through the script ``Contained.script`` writes.

:func:`kill_and_look` kills the stand-in at a chosen moment and says whether the step ran to
its end anyway (it must not: every link dies with its server).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

STAND_IN = """
import asyncio, os, sys
from pathlib import Path
from codeyard.agents import piped, process
from codeyard.agents.claude.process import CLI_ENV, cli_script, launcher
from codeyard.agents.script import _run_bash
from codeyard.sandbox import Sandbox, contain

HOW, ON = sys.argv[1], sys.argv[2] == "on"
STEP = "echo start >> marks; sleep 0.3; echo end >> marks"


class Recorder:
    async def started(self, record):
        print(record.pgid, flush=True)

    async def ended(self, record):
        pass


async def main():
    here = Path.cwd()
    sandbox = Sandbox(enabled=ON, worktrees=(here,))
    if HOW == "claude":  # no recorder and no gate: the SDK spawns the launcher itself
        jail = contain(sandbox, "script", ["/bin/bash", "-c", STEP], {}, cwd=here)
        cli = here / "claude-cli"
        cli.write_text(cli_script(jail, os.environ))
        cli.chmod(0o700)
        env = {**os.environ, CLI_ENV: str(cli), process.GATE_PARENT_ENV: str(os.getpid())}
        proc = await piped.create_subprocess_exec(str(launcher()), env=env, cwd=here)
        print(proc.pid, flush=True)
        await proc.wait()
        return
    process.recorder.set(Recorder())
    if HOW == "step":
        await _run_bash(STEP, here, 30, sandbox=sandbox, mark=here / ".git" / "mark")
    else:
        jail = contain(sandbox, "script", ["/bin/bash", "-c", STEP], {}, cwd=here)
        proc, _ = await process.spawn(jail.argv, kind="agent", cwd=here, env=jail.env)
        await proc.wait()


asyncio.run(main())
"""


#: The checkout whose ``codeyard`` the stand-in imports: this one, unless
#: ``CODEYARD_DEATH_CHAIN_CODE`` names another (an older commit, to watch the escape come back).
CODE = os.environ.get("CODEYARD_DEATH_CHAIN_CODE") or str(Path(__file__).resolve().parents[2])


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except (OSError, ValueError):
        return []


def _descendants(pid: int, depth: int) -> list[int]:
    """The processes ``depth`` generations below ``pid``."""
    found = [pid]
    for _ in range(depth):
        found = [c for p in found for c in _children(p)]
    return found


def kill_and_look(where: Path, how: str, sandbox: str, delay: float | None = None) -> str:
    """Start the stand-in in ``where`` (a new directory), ``kill -9`` it, and return ``marks``
    once the step would have ended. ``delay``: seconds after the spawn to kill it; None: the
    moment bubblewrap's sandboxed process exists (it sets its own death signal only once the
    sandbox is built), or without the sandbox the step shell's command was just forked."""
    where.mkdir(parents=True)
    (where / ".git").mkdir()
    server = subprocess.Popen(
        [sys.executable, "-c", STAND_IN, how, sandbox],
        cwd=where,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": CODE},
    )
    try:
        assert server.stdout is not None
        first = int(server.stdout.readline())
        if delay is not None:
            time.sleep(delay)
        else:
            # The sandbox's inner process: a grandchild when the step shell forks bwrap.
            depth = 2 if (how, sandbox) == ("step", "on") else 1
            deadline = time.monotonic() + 10
            while not _descendants(first, depth) and time.monotonic() < deadline:
                time.sleep(0.0002)
    finally:
        server.kill()
        server.wait()
        if server.stdout is not None:
            server.stdout.close()
    # Long enough for a step that escaped to end (0.3 s after a sandbox set up under load).
    time.sleep(1.5)
    marks = where / "marks"
    found = marks.read_text() if marks.exists() else ""
    _reap_left_in(where)
    return found


def _reap_left_in(where: Path) -> None:
    """Kill what the killed chain left naming ``where``: an outer bubblewrap killed before it
    set its own death signal stays, idle and childless (no user code runs in it), and would
    pile up across runs of the suite."""
    needle = str(where).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "cmdline").read_bytes():
                os.kill(int(entry.name), 9)
        except OSError:
            continue  # gone already, or not ours
