"""The programs a contained agent's start runs, from the server's spawn to the CLI (issue 15).

Each link is a program start (~0.5-2.5 ms of CPU, more when the machine is busy): the chain
keeps only those a guarantee needs. ``setpriv`` sets the death signal; the first shell after it
checks the parent (the spawn gate, or Claude Code's contained script) and also lowers the
session's group and, in the script, sets the environment (no ``/usr/bin/env``, no shell of its
own for the group); ``nice`` (where the server cannot set the niceness at a gate itself), then
``bwrap``, then the lifeline's shell inside. Claude Code's
launcher is started by the SDK's spawn as a session's leader, so no ``setsid`` either. Watched
with ``strace`` in a stand-in server (the Codex/ACP path through ``spawn``, the Claude path
through the launcher).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from codeyard.agents import process
from codeyard.sandbox import Sandbox, contain, priority

STAND_IN = """
import asyncio, os, sys
from pathlib import Path
from codeyard.agents import piped, process
from codeyard.agents.claude import process as claude
from codeyard.sandbox import Sandbox, contain

HOW, CLI = sys.argv[1], ["/bin/echo", "started"]


class Recorder:
    async def started(self, record):
        pass

    async def ended(self, record):
        pass


async def main():
    here = Path.cwd()
    sandbox = Sandbox(worktrees=(here,))
    jail = contain(sandbox, "script", CLI, {}, cwd=here, own_session=True)
    if HOW == "claude":
        script = here / "contained-claude"
        script.write_text(claude.cli_script(jail, os.environ))
        script.chmod(0o700)
        env = {**os.environ, claude.CLI_ENV: str(script), process.GATE_PARENT_ENV: str(os.getpid())}
        with piped.new_session():  # as the Claude turn has the SDK's spawn do
            proc = await piped.create_subprocess_exec(
                str(claude.launcher()), env=env, cwd=here, stdout=asyncio.subprocess.PIPE
            )
    else:
        process.recorder.set(Recorder())
        proc, _ = await process.spawn(
            jail.bare, lead=jail.lead, niceness=jail.niceness, kind="agent", cwd=here, env=jail.env,
            stdout=asyncio.subprocess.PIPE,
        )
    print((await proc.stdout.read()).decode().strip(), await proc.wait(), flush=True)


asyncio.run(main())
"""

needs = pytest.mark.skipif(
    shutil.which("strace") is None
    or not process.pdeathsig_prefix()
    or not Sandbox().probe().ok
    or not priority.autogroups(),
    reason="needs strace, setpriv, bubblewrap and sched_autogroup",
)


def _succeeded(lines: list[str]) -> list[str]:
    """The programs of the ``execve`` calls that succeeded, in the order they returned: a call
    another process interrupted is logged in two lines (``<unfinished ...>``, then
    ``<... execve resumed>`` under the same pid)."""
    ran: list[str] = []
    pending: dict[str, str] = {}
    for line in lines:
        pid = line.split(" ", 1)[0]
        if 'execve("' in line:
            path = line.split('execve("', 1)[1].split('"', 1)[0]
            if line.endswith("<unfinished ...>"):
                pending[pid] = path
            elif line.endswith("= 0"):
                ran.append(path)
        elif "<... execve resumed>" in line and pid in pending:
            path = pending.pop(pid)
            if line.endswith("= 0"):
                ran.append(path)
    return ran


def _programs(how: str, where: Path) -> list[str]:
    """The programs the stand-in's child ran, in order (each ``execve`` that succeeded)."""
    log = where / "execs.log"
    code = str(Path(__file__).resolve().parents[2])
    strace = ["strace", "-f", "-qq", "-e", "trace=execve", "-e", "signal=none", "-o", str(log)]
    done = subprocess.run(
        [*strace, sys.executable, "-c", STAND_IN, how],
        cwd=where,
        env={**os.environ, "PYTHONPATH": code},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if "ptrace" in done.stderr and "Operation not permitted" in done.stderr:
        pytest.skip("ptrace is not allowed here")
    assert done.stdout.split() == ["started", "0"], done.stdout + done.stderr
    names = [os.path.basename(path) for path in _succeeded(log.read_text().splitlines())]
    # A refused autogroup write is tried again beside the command, with ``sleep`` between tries
    # (``priority.group_line``: the kernel takes ten unprivileged writes a second host-wide, and
    # a loaded host's other sessions take them): not a link of the chain.
    names = [name for name in names if name != "sleep"]
    # Before the chain: the stand-in itself and the sandbox's probe (bwrap running sh).
    first = min(names.index(n) for n in ("setpriv", "claude-launcher") if n in names)
    return names[first:]


@needs
def test_an_agent_spawned_through_the_gate_starts_in_five_programs(tmp_path: Path) -> None:
    """Codex and ACP agents: setpriv, the gate (bash: it reads the go byte and lowers the
    session's group; the server sets its niceness while it waits), bwrap, the lifeline's sh,
    the CLI. It was seven: the group's own ``sh`` and ``nice`` between the gate and bwrap."""
    ran = _programs("agent", tmp_path)
    assert ran == ["setpriv", "bash", "bwrap", "sh", "echo"], ran


@needs
def test_claude_code_starts_in_seven_programs(tmp_path: Path) -> None:
    """Claude Code: the launcher, setpriv, the contained script (parent check, environment,
    group), nice, bwrap, the lifeline's sh, the CLI. It was eleven: ``setsid``, a shell for
    the parent check, ``/usr/bin/env -u`` and a shell for the group on top."""
    ran = _programs("claude", tmp_path)
    expected = ["claude-launcher", "setpriv", "contained-claude", "nice", "bwrap", "sh", "echo"]
    assert ran == expected, ran


def test_names_a_shell_cannot_unset_still_leave_the_environment(tmp_path: Path) -> None:
    """The contained script drops what the SDK merged in with ``unset``, and the names a shell
    cannot unset (not an identifier: bash passes them on; or the shell's own) with ``env -u``,
    which it then runs only for them: under bash as much as under dash."""
    jail = contain(
        Sandbox(enabled=False, niceness=0), "claude-code", ["/usr/bin/printenv"], {"KEEP": "1"}
    )
    inherited = ["PLAIN_SECRET", "ODD.SECRET", "PPID", "KEEP"]
    plain = jail.script(["PLAIN_SECRET", "KEEP"])
    assert "/usr/bin/env" not in plain and "unset PLAIN_SECRET" in plain
    script = tmp_path / "contained"
    script.write_text(jail.script(inherited))
    merged = {"PATH": os.environ["PATH"], "PLAIN_SECRET": "s1", "ODD.SECRET": "s2", "KEEP": "0"}
    for shell in ("/bin/sh", "/bin/bash"):
        out = subprocess.run(
            [shell, str(script)], env=merged, capture_output=True, text=True, check=True
        ).stdout
        assert "KEEP=1" in out.splitlines() and "s1" not in out and "s2" not in out, (shell, out)
