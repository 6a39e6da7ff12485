"""Shell commands of ``shell`` / ``loop`` / ``compare`` steps: in a run's worktree, contained by
the same sandbox as the run's own processes, in a process group killed on cancel or timeout.

Below both callers: the workflow engine (the local executor's worktrees) and a Temporal worker
host (``temporal.on_host_work``, the worktrees it holds)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from codeyard.agents.process import spawn
from codeyard.sandbox import Sandbox, SandboxUnavailable, contain

#: Output kept per stream in a step's result (the tail: failures print last).
KEEP = 64 * 1024


@dataclass(slots=True)
class ShellResult:
    exit_code: int | None
    output: str
    timed_out: bool

    def as_output(self) -> dict[str, object]:
        return {"exit_code": self.exit_code, "stdout": self.output, "timed_out": self.timed_out}


async def run(command: str, worktree: Path, sandbox: Sandbox, timeout: float) -> ShellResult:
    try:
        jail = contain(
            sandbox.for_run([worktree], sandbox.network) if sandbox.enabled else sandbox,
            "script",
            ["/bin/bash", "-c", command],
            {},
            cwd=worktree,
            own_session=True,  # spawn() starts it as a session's leader
        )
    except SandboxUnavailable as exc:
        return ShellResult(None, f"sandbox unavailable: {exc.detail}", False)
    proc, group = await spawn(
        jail.bare,
        lead=jail.lead,
        niceness=jail.niceness,
        kind="workflow-shell",
        cwd=worktree,
        env=jail.env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        return ShellResult(proc.returncode, out.decode(errors="replace")[-KEEP:], False)
    except TimeoutError:
        group.kill()
        out, _ = await proc.communicate()
        return ShellResult(None, out.decode(errors="replace")[-KEEP:], True)
    except asyncio.CancelledError:
        group.kill()
        await proc.wait()
        raise
    finally:
        await group.untrack()
