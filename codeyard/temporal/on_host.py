"""Work in a run's worktree on the Temporal executor: an activity on the queue of the host that
holds the worktree (issue 20: workflow shell steps; issue 16: a run's checks, and the work of
``run_workspace.worktree_reads`` and ``worktree_writes``: the review's diff, landing, pull
requests, discard, commit, rebase, agent merge, checkpoints and the file browser: ``worktree``).

A Temporal client cannot run an activity by itself, so each piece of work is a small workflow
(``CodeyardOnHost``, on the queue every API server polls: it runs, and can say a host is gone,
while no worker is up) that runs the named activity (``shell``, ``checks``, served by
``on_host_work``) on ``host_queue(host)``. Its id names the work (a shell step's
execution and key; a check suite's run and key), and a completed one is never started again: a
caller that asks again after a restart gets the recorded result instead of running the work
twice (one that failed to run, or was cancelled, may be started again). A host that does not
pick the work up within :data:`PICKUP_TIMEOUT`, or stops heartbeating while it runs, is
reported as gone, naming the host and the fix; the work never runs on another host (the
worktree is on that host's disk).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import uuid
import zlib
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutType
from temporalio.exceptions import TimeoutError as ActivityTimeout

with workflow.unsafe.imports_passed_through():
    from temporalio.client import Client, WorkflowFailureError
    from temporalio.exceptions import WorkflowAlreadyStartedError
    from temporalio.service import RPCError

    from codeyard.checks.runner import SuiteResult
    from codeyard.checks.spec import CheckResult
    from codeyard.domain import errors
    from codeyard.run_workspace.on_host import (
        ChecksJob,
        NotRunOnHost,
        ShellJob,
        ShellOutcome,
        TreesJob,
        WorktreeJob,
    )
    from codeyard.temporal.contracts import EXECUTIONS_QUEUE, HEARTBEAT_TIMEOUT, host_queue

ON_HOST_WORKFLOW = "CodeyardOnHost"
#: The failure type of work that did not run (host gone, worktree not there).
NOT_RUN = "NotRunOnHost"
#: A host that does not take the work in this long is taken to be gone (a live host polls its
#: queue continuously; 200 activities may run there at once).
PICKUP_TIMEOUT = timedelta(seconds=15)
#: Beyond the work's own timeout (the host kills it then): time to report the result.
GRACE = timedelta(seconds=60)
T = TypeVar("T")


@dataclass(slots=True)
class OnHostInput:
    """What ``CodeyardOnHost`` runs: activity ``activity`` with ``payload`` on ``host``."""

    host: str
    #: ``shell``, ``checks``, ``trees`` or ``worktree``.
    activity: str
    #: The activity's argument (``ShellInput``, ``ChecksInput``, ``TreesInput``, as the wire
    #: carries it).
    payload: dict[str, Any]
    timeout: float
    #: For the message when the host is gone: what the work is, whose worktree, what to do
    #: once the host is back.
    what: str = "the command"
    holder: str = "the step's"
    then: str = "resume the execution"


@dataclass(slots=True)
class ShellInput:
    host: str
    worktree: str
    command: str
    timeout: float


@dataclass(slots=True)
class ShellOutput:
    exit_code: int | None
    output: str
    timed_out: bool
    host: str
    #: Why the host could not run it (the worktree is not there); "" when it ran.
    error: str = ""


@dataclass(slots=True)
class ChecksInput:
    run_id: str
    worktrees: dict[str, str]
    #: Check specs (``CheckSpec`` as JSON) by repository id.
    checks: dict[str, list[dict[str, Any]]]
    trigger: str
    env: dict[str, str]


@dataclass(slots=True)
class ChecksOutput:
    host: str
    results: list[CheckResult] = field(default_factory=list)
    trees: dict[str, str] = field(default_factory=dict)
    error: str = ""


@dataclass(slots=True)
class TreesInput:
    worktrees: dict[str, str]


@dataclass(slots=True)
class TreesOutput:
    host: str
    trees: dict[str, str] = field(default_factory=dict)
    error: str = ""


@dataclass(slots=True)
class WorktreeInput:
    #: The operation's name (``on_host_work.OPS``) and its job (``asdict``).
    op: str
    job: dict[str, Any]


@dataclass(slots=True)
class WorktreeOutput:
    host: str
    #: The result (``asdict``) as zlib-compressed JSON in base64: a diff can be large, and an
    #: activity's result is one Temporal payload (the server refuses those over 2 MB).
    data: str = ""
    #: A domain error raised there: ``{kind, title, detail, extra}`` (:func:`problem_of`).
    problem: dict[str, Any] | None = None
    error: str = ""


#: The compressed result's size a host sends back at most (base64 characters).
MAX_RESULT = 1_500_000
#: The problem classes a domain error is carried as (its nearest one in its class's MRO).
_PROBLEMS: dict[str, type[errors.CodeyardError]] = {
    c.__name__: c
    for c in (
        errors.BadRequest,
        errors.NotFound,
        errors.Conflict,
        errors.InvalidTransition,
        errors.PayloadTooLarge,
        errors.ValidationFailed,
        errors.Forbidden,
    )
}


def problem_of(exc: errors.CodeyardError) -> dict[str, Any]:
    """A domain error as JSON: the same problem (status, title, detail, members) on the API."""
    kind = next((c.__name__ for c in type(exc).__mro__ if c.__name__ in _PROBLEMS), "")
    extra = json.loads(json.dumps(exc.extra, default=str))
    return {"kind": kind, "title": exc.title, "detail": exc.detail, "extra": extra}


def raise_problem(problem: dict[str, Any]) -> None:
    cls = _PROBLEMS.get(str(problem.get("kind")), errors.CodeyardError)
    exc = cls(str(problem["detail"]), **dict(problem.get("extra") or {}))
    exc.title = str(problem.get("title") or cls.title)
    raise exc


def pack(value: Any) -> str:
    raw = json.dumps(asdict(value), separators=(",", ":")).encode()
    return base64.b64encode(zlib.compress(raw, 6)).decode("ascii")


def unpack(data: str, result: type[T]) -> T:
    return result(**json.loads(zlib.decompress(base64.b64decode(data))))


def shell_workflow_id(execution_id: str, key: str) -> str:
    return f"codeyard-shell-{execution_id}-{key}"


def checks_workflow_id(run_id: str, key: str) -> str:
    return f"codeyard-checks-{run_id}-{key}"


def lost_message(job: OnHostInput, started: bool) -> str:
    what = (
        f"stopped answering while it ran {job.what}"
        if started
        else f"did not take {job.what} within {int(PICKUP_TIMEOUT.total_seconds())} s"
    )
    return (
        f"worker host '{job.host}', which holds {job.holder} worktree, {what}: it is down or "
        f"gone. Start `codeyard worker --name {job.host}` again on that machine (the worktree "
        f"is on its disk), then {job.then}"
    )


@workflow.defn(name=ON_HOST_WORKFLOW)
class OnHostWorkflow:
    @workflow.run
    async def run(self, job: OnHostInput) -> dict[str, Any]:
        try:
            result: dict[str, Any] = await workflow.execute_activity(
                job.activity,
                job.payload,
                task_queue=host_queue(job.host),
                schedule_to_start_timeout=PICKUP_TIMEOUT,
                start_to_close_timeout=timedelta(seconds=job.timeout) + GRACE,
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=RetryPolicy(maximum_attempts=1),
            )
        except ActivityError as exc:
            cause = exc.cause
            if isinstance(cause, ActivityTimeout) and cause.type in (
                TimeoutType.SCHEDULE_TO_START,
                TimeoutType.HEARTBEAT,
            ):
                started = cause.type == TimeoutType.HEARTBEAT
                raise ApplicationError(
                    lost_message(job, started), type=NOT_RUN, non_retryable=True
                ) from exc
            raise
        if result.get("error"):
            raise ApplicationError(str(result["error"]), type=NOT_RUN, non_retryable=True)
        return result


async def run_on_host(client: Client, wid: str, job: OnHostInput, result_type: type[T]) -> T:
    """Start (or re-attach to) the work's workflow and wait for its result; cancelling the
    caller cancels the workflow, whose activity's host kills the work. Raises
    :class:`NotRunOnHost`."""
    try:
        handle = await client.start_workflow(
            ON_HOST_WORKFLOW,
            job,
            id=wid,
            task_queue=EXECUTIONS_QUEUE,
            result_type=result_type,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
        )
    except WorkflowAlreadyStartedError:  # running, or completed before a restart: its result
        handle = client.get_workflow_handle(wid, result_type=result_type)
    try:
        out: T = await handle.result()
    except asyncio.CancelledError:
        await asyncio.shield(_cancel(client, wid))
        raise
    except WorkflowFailureError as exc:
        # A failed workflow's id may be started again: a retry or resume runs the work anew.
        cause = exc.cause
        if isinstance(cause, ApplicationError) and cause.type == NOT_RUN:
            raise NotRunOnHost(cause.message) from exc
        raise NotRunOnHost(f"{job.what} on worker host '{job.host}' failed: {cause}") from exc
    return out


async def run_shell(client: Client, job: ShellJob) -> ShellOutcome:
    """A workflow step's command in its run's worktree, on the worktree's host."""
    wire = ShellInput(job.host, job.worktree, job.command, job.timeout)
    work = OnHostInput(job.host, "shell", asdict(wire), job.timeout)
    out = await run_on_host(client, shell_workflow_id(job.execution_id, job.key), work, ShellOutput)
    return ShellOutcome(out.exit_code, out.output, out.timed_out, out.host)


async def run_checks(client: Client, job: ChecksJob) -> SuiteResult:
    """A run's check suite in its worktrees, on their host."""
    wire = ChecksInput(
        job.run_id,
        dict(job.worktrees),
        {r: [s.model_dump() for s in specs] for r, specs in job.checks.items()},
        job.trigger,
        dict(job.env),
    )
    timeout = sum(s.timeout_seconds for specs in job.checks.values() for s in specs)
    work = OnHostInput(
        job.host,
        "checks",
        asdict(wire),
        timeout,
        what="the run's checks",
        holder="the run's",
        then=f"run its checks again (POST /api/runs/{job.run_id}/checks)",
    )
    out = await run_on_host(client, checks_workflow_id(job.run_id, job.key), work, ChecksOutput)
    return SuiteResult(list(out.results), dict(out.trees))


#: Reading the worktrees' state is quick (``snapshot_tree``: a scratch index, ``write-tree``).
TREES_TIMEOUT = 120.0


async def run_trees(client: Client, job: TreesJob) -> dict[str, str]:
    """The current tree id of a run's worktrees, read on their host (a read: a new id each)."""
    work = OnHostInput(
        job.host,
        "trees",
        asdict(TreesInput(dict(job.worktrees))),
        TREES_TIMEOUT,
        what="the read of the run's worktrees",
        holder="the run's",
        then="ask again",
    )
    wid = f"codeyard-trees-{job.run_id}-{uuid.uuid4().hex}"
    out = await run_on_host(client, wid, work, TreesOutput)
    return dict(out.trees)


async def run_worktree(client: Client, job: WorktreeJob, result: type[T]) -> T:
    """A git operation (``worktree_dispatch.Op``) in a run's worktrees, on their host; its
    result, or the domain error it raised there."""
    work = OnHostInput(
        job.host,
        "worktree",
        asdict(WorktreeInput(job.op, asdict(job.job))),
        job.timeout,
        what=job.what,
        holder="the run's",
        then=job.then,
    )
    wid = f"codeyard-worktree-{job.op}-{job.run_id}-{uuid.uuid4().hex}"
    out = await run_on_host(client, wid, work, WorktreeOutput)
    if out.problem is not None:
        raise_problem(out.problem)
    return unpack(out.data, result)


async def _cancel(client: Client, wid: str) -> None:
    with contextlib.suppress(RPCError):  # it ended already: nothing to stop
        await client.get_workflow_handle(wid).cancel()
