"""An optional executor capability: work in a run's worktree on the host that holds it.

A workflow's ``shell``, ``loop`` or ``compare`` step runs a command in a run step's worktree; a
run's checks (after each turn, or on demand) run their commands in its worktrees; the review's
diff, landing, a pull request's push, discard, commit, rebase, agent merge, checkpoints and the
file browser work in them (``worktree_reads``, ``worktree_writes``). With the local executor
those worktrees are on the API server's disk and the caller does the work itself
(``workspace.shell``, ``checks.runner``, ``worktree_dispatch``). A distributed executor keeps
worktrees on worker hosts: it implements :class:`OnWorktreeHost` and the caller hands it the
work, naming the host that holds the worktrees (the run row's ``worker_host``). Pure
declarations, no I/O: callers see this seam, never the executor's internals.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

from codeyard.checks.runner import SuiteResult
from codeyard.checks.spec import CheckSpec

__all__ = [
    "ChecksJob",
    "NotRunOnHost",
    "OnWorktreeHost",
    "ShellJob",
    "ShellOutcome",
    "TreesJob",
    "WorktreeJob",
]

R = TypeVar("R")


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


@dataclass(frozen=True, slots=True)
class ChecksJob:
    """A run's check suite (``checks.runner.run_suite``) in its worktrees on one host; the host
    stores the ``check.started`` / ``check.completed`` events as they happen."""

    #: The worker host that holds the run's worktrees (the run row's ``worker_host``).
    host: str
    run_id: str
    #: The run's worktrees by repository id.
    worktrees: Mapping[str, str]
    checks: Mapping[str, Sequence[CheckSpec]]
    #: ``turn`` or ``manual``.
    trigger: str
    env: Mapping[str, str]
    #: Names the suite durably (with the run id): asked again, it re-attaches to the same suite.
    key: str


@dataclass(frozen=True, slots=True)
class TreesJob:
    """The current state (``checks.runner.worktree_trees``) of a run's worktrees on one host:
    whether a check suite's result still matches them."""

    host: str
    run_id: str
    worktrees: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class WorktreeJob:
    """One git operation (a ``worktree_dispatch.Op``) in a run's worktrees on one host."""

    host: str
    run_id: str
    #: The operation's name (``Op.name``) and its job (that operation's dataclass).
    op: str
    job: Any
    timeout: float
    #: For the message when the host is gone: what the work is, what to do once it is back.
    what: str
    then: str


class NotRunOnHost(Exception):
    """The work did not run to an end: the host holding the worktree is gone (down, or lost
    mid-way), or the worktree is not on it; the message names the host and what to do."""


@runtime_checkable
class OnWorktreeHost(Protocol):
    async def run_shell(self, job: ShellJob) -> ShellOutcome:
        """Run ``job`` on its host, sandboxed as that host sandboxes runs; cancelling the
        caller kills the command. Raises :class:`NotRunOnHost`."""
        ...

    async def run_checks(self, job: ChecksJob) -> SuiteResult:
        """Run the suite on its host, sandboxed like the run's setup scripts there; the
        per-check events are stored as they happen. Raises :class:`NotRunOnHost`."""
        ...

    async def worktree_trees(self, job: TreesJob) -> dict[str, str]:
        """The tree id of each worktree, read on its host. Raises :class:`NotRunOnHost`."""
        ...

    async def in_worktrees(self, job: WorktreeJob, result: type[R]) -> R:
        """Run the operation on its host; its result as ``result``. A domain error raised
        there is raised here as the same problem. Raises :class:`NotRunOnHost`."""
        ...
