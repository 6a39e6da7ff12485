"""An optional executor capability: run a workflow's shell command on the host of a worktree.

A ``shell``, ``loop`` or ``compare`` step runs its command in a run step's worktree. With the
local executor that worktree is on the API server's disk and the engine runs the command itself
(``workflows.shell``). A distributed executor keeps worktrees on worker hosts: it implements
:class:`RemoteShell` and the engine hands it the command, naming the host that holds the
worktree (the run row's ``worker_host``). Pure declarations, no I/O: the engine sees this seam,
never the executor's internals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class ShellJob:
    """One command of one workflow step, in one worktree on one host."""

    #: The worker host that holds ``worktree`` (the run row's ``worker_host``).
    host: str
    worktree: str
    command: str
    timeout: float
    #: Names the command durably: the execution and the step key (attempts have their own key),
    #: so an engine that asks again after a restart re-attaches instead of running it twice.
    execution_id: str
    key: str


@dataclass(frozen=True, slots=True)
class ShellOutcome:
    exit_code: int | None
    output: str
    timed_out: bool
    #: The host the command ran on.
    host: str


class ShellNotRun(Exception):
    """The command did not run to an end: the host holding the worktree is gone (down, or lost
    mid-way), or the worktree is not on it; the message names the host and what to do."""


@runtime_checkable
class RemoteShell(Protocol):
    async def run_shell(self, job: ShellJob) -> ShellOutcome:
        """Run ``job`` on its host, sandboxed as that host sandboxes runs; cancelling the
        caller kills the command. Raises :class:`ShellNotRun`."""
        ...
