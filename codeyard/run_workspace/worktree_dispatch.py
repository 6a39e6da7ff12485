"""Work in a run's worktrees that the API's services need, done where the worktrees are.

The seam both kinds of work go through, apart from either kind (``worktree_reads``: the
review's diff and the file browser; ``worktree_writes``: commits, rebases, landing, pull
requests, discard, checkpoints). An :class:`Op` names one operation, its job and its typed
result; :func:`in_worktrees` runs it. With the local executor the worktrees are on the API
server's disk and the operation is called in process (exactly the work the services did
before). An executor that keeps worktrees on worker hosts (``on_host.OnWorktreeHost``) runs it
on the host that holds them and returns the same typed value; a domain error raised there is
raised here as the same problem; a host that is gone answers 409 naming the host and the fix.

Every job and result is a flat dataclass of JSON values, so it crosses the wire as it is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard.domain.errors import Conflict
from codeyard.run_workspace.on_host import NotRunOnHost, OnWorktreeHost, WorktreeJob
from codeyard.sandbox import Sandbox
from codeyard.store.writer import Writer

__all__ = ["Here", "Op", "in_worktrees"]

J = TypeVar("J")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Here:
    """What an operation may use besides git, on the process that runs it."""

    engine: AsyncEngine
    writer: Writer
    #: The sandbox run processes get here (read only by what runs scripts:
    #: ``worktree_writes.REMOVE``).
    sandbox: Callable[[], Awaitable[Sandbox | None]]


@dataclass(frozen=True, slots=True)
class Op(Generic[J, R]):
    """A named operation: its job and result types, what it does, and the sentence's end for
    a gone host (``then``: what to do once it is back)."""

    name: str
    job: type[J]
    result: type[R]
    run: Callable[[Here, J], Awaitable[R]]
    what: str
    then: str
    #: Seconds the host may take (it is killed after).
    timeout: float = 300.0


async def in_worktrees(
    executor: object, run: dict[str, Any], op: Op[J, R], job: J, here: Here
) -> R:
    """``op(job)`` where the run's worktrees are: on the run's worker host when the executor
    keeps worktrees there (409 naming the host and the fix when it is gone), else in process."""
    if isinstance(executor, OnWorktreeHost) and run.get("worker_host"):
        host = str(run["worker_host"])
        call = WorktreeJob(host, run["id"], op.name, job, op.timeout, op.what, op.then)
        try:
            return await executor.in_worktrees(call, op.result)
        except NotRunOnHost as exc:
            raise Conflict(f"Run {run['number']}: {exc}.", worker_host=host) from exc
    return await op.run(here, job)
