"""The ``shell`` activity a worker host serves on its own queue: a workflow step's command in a
worktree this host holds, contained by the sandbox this host gives its runs (the stored
``sandbox`` setting applied to the worker's base sandbox), run on the host runtime's loop while
this loop heartbeats (a cancel arrives with a heartbeat's answer and kills the command).
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from temporalio import activity

from codeyard.sandbox import Sandbox
from codeyard.sandbox import setting as sandbox_setting
from codeyard.temporal.contracts import HEARTBEAT_EVERY
from codeyard.temporal.host import HostRuntime
from codeyard.temporal.shell_flow import ShellInput, ShellOutput
from codeyard.workflows import shell


async def run_here(runtime: HostRuntime, job: ShellInput) -> ShellOutput:
    """On the host runtime's loop: the command in ``job.worktree``, or why it cannot run."""
    host = runtime.config.host
    worktree = Path(job.worktree)
    if not worktree.is_dir():
        return ShellOutput(
            None, "", False, host,
            f"the worktree {worktree} is not on worker host '{host}': its run was landed or "
            "discarded, or moved to another host; run shell, loop and compare checks before "
            "landing",
        )  # fmt: skip
    async with runtime.engine.connect() as conn:
        sandbox = await sandbox_setting.effective(conn, runtime.config.sandbox or Sandbox())
    result = await shell.run(job.command, worktree, sandbox, job.timeout)
    return ShellOutput(result.exit_code, result.output, result.timed_out, host)


class ShellActivities:
    def __init__(self, runtime: HostRuntime) -> None:
        self.runtime = runtime

    @activity.defn(name="shell")
    async def shell(self, job: ShellInput) -> ShellOutput:
        work = self.runtime.call(run_here(self.runtime, job))
        beat = asyncio.create_task(_heartbeat())
        try:
            return await work
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat


async def _heartbeat() -> None:
    while True:
        activity.heartbeat()
        await asyncio.sleep(HEARTBEAT_EVERY)
