"""A workflow step's shell command on the Temporal executor: an activity on the queue of the host
that holds the worktree (issue 20).

A Temporal client cannot run an activity by itself, so each command is a small workflow
(``CodeyardShell``, on the shared queue) that runs the ``shell`` activity on
``host_queue(host)`` (served by ``shell_host``). Its id names the execution and step key, and a
completed one is never started again: an engine that asks again after a restart gets the
recorded result instead of running the command twice (one that failed to run, or was
cancelled, may be started again). A host that does not pick the command up
within :data:`SHELL_PICKUP_TIMEOUT`, or stops heartbeating while it runs, is reported as gone.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutType
from temporalio.exceptions import TimeoutError as ActivityTimeout

with workflow.unsafe.imports_passed_through():
    from temporalio.client import Client, WorkflowFailureError
    from temporalio.exceptions import WorkflowAlreadyStartedError
    from temporalio.service import RPCError

    from codeyard.executor.remote_shell import ShellJob, ShellNotRun, ShellOutcome
    from codeyard.temporal.contracts import HEARTBEAT_TIMEOUT, SHARED_QUEUE, host_queue

SHELL_WORKFLOW = "CodeyardShell"
#: The failure type of a command that did not run (host gone, worktree not there).
NOT_RUN = "ShellNotRun"
#: A host that does not take a shell command in this long is taken to be gone (a live host
#: polls its queue continuously; 200 activities may run there at once).
SHELL_PICKUP_TIMEOUT = timedelta(seconds=15)
#: Beyond the command's own timeout (the host kills it then): time to report the result.
SHELL_GRACE = timedelta(seconds=60)


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


def shell_workflow_id(execution_id: str, key: str) -> str:
    return f"codeyard-shell-{execution_id}-{key}"


def lost_message(host: str, started: bool) -> str:
    what = (
        "stopped answering while it ran the command"
        if started
        else f"did not take the command within {int(SHELL_PICKUP_TIMEOUT.total_seconds())} s"
    )
    return (
        f"worker host '{host}', which holds the step's worktree, {what}: it is down or gone. "
        f"Start `codeyard worker --name {host}` again on that machine (the worktree is on its "
        "disk), then resume the execution"
    )


@workflow.defn(name=SHELL_WORKFLOW)
class ShellWorkflow:
    @workflow.run
    async def run(self, job: ShellInput) -> ShellOutput:
        try:
            result: ShellOutput = await workflow.execute_activity(
                "shell",
                job,
                result_type=ShellOutput,
                task_queue=host_queue(job.host),
                schedule_to_start_timeout=SHELL_PICKUP_TIMEOUT,
                start_to_close_timeout=timedelta(seconds=job.timeout) + SHELL_GRACE,
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
                    lost_message(job.host, started), type=NOT_RUN, non_retryable=True
                ) from exc
            raise
        if result.error:
            raise ApplicationError(result.error, type=NOT_RUN, non_retryable=True)
        return result


async def run_on_host(client: Client, job: ShellJob) -> ShellOutcome:
    """Start (or re-attach to) the command's workflow and wait for its result; cancelling the
    caller cancels the workflow, whose activity's host kills the command."""
    wid = shell_workflow_id(job.execution_id, job.key)
    wire = ShellInput(job.host, job.worktree, job.command, job.timeout)
    try:
        handle = await client.start_workflow(
            SHELL_WORKFLOW,
            wire,
            id=wid,
            task_queue=SHARED_QUEUE,
            result_type=ShellOutput,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
        )
    except WorkflowAlreadyStartedError:  # running, or completed before a restart: its result
        handle = client.get_workflow_handle(wid, result_type=ShellOutput)
    try:
        out = await handle.result()
    except asyncio.CancelledError:
        await asyncio.shield(_cancel(client, wid))
        raise
    except WorkflowFailureError as exc:
        # A failed workflow's id may be started again: a retry or resume runs the command anew.
        cause = exc.cause
        if isinstance(cause, ApplicationError) and cause.type == NOT_RUN:
            raise ShellNotRun(cause.message) from exc
        raise ShellNotRun(f"the shell command on worker host '{job.host}' failed: {cause}") from exc
    return ShellOutcome(out.exit_code, out.output, out.timed_out, out.host)


async def _cancel(client: Client, wid: str) -> None:
    with contextlib.suppress(RPCError):  # it ended already: nothing to stop
        await client.get_workflow_handle(wid).cancel()
