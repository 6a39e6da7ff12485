"""A workflow execution as a Temporal workflow (issue 20): ``CodeyardExecution``, id
``codeyard-execution-<execution id>``, on the queue every API server polls.

The workflow holds only the scheduling: which top-level steps are ready (their ``depends_on``
ended), started as activities, the first failure cancelling the rest. Everything with I/O is
an activity on an API server, calling back into the engine (``ExecutionSteps``): a step (which
writes its ``workflow.*`` events, creates its runs through the run service and waits for them)
and the execution's end. An API server killed mid-step stops heartbeating; Temporal gives the
step to another API server, whose engine folds the log and re-attaches to the run the step had
recorded: nothing runs twice and no server has to resume anything.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from temporalio.client import Client, WorkflowFailureError
    from temporalio.exceptions import WorkflowAlreadyStartedError
    from temporalio.service import RPCError, RPCStatusCode
    from temporalio.worker import Worker

    from codeyard.executor.durable_executions import ExecutionSteps, StepError
    from codeyard.temporal.contracts import (
        CONTROL_TIMEOUT,
        EXECUTIONS_QUEUE,
        HEARTBEAT_EVERY,
        HEARTBEAT_TIMEOUT,
        STICKY_TIMEOUT,
    )
    from codeyard.temporal.on_host import OnHostWorkflow

EXECUTION_WORKFLOW = "CodeyardExecution"
#: A step that failed for good (recorded in the execution's log): not tried again.
STEP_FAILED = "WorkflowStepFailed"
#: How long one top-level step may take (a run step waits for its agent; approvals for people).
STEP_TIMEOUT = timedelta(days=30)
#: A step whose server died is taken by another server; infrastructure errors retry slowly.
_STEP_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=20,
    non_retryable_error_types=[STEP_FAILED],
)


def execution_workflow_id(execution_id: str) -> str:
    return f"codeyard-execution-{execution_id}"


@dataclass(slots=True)
class ExecutionInput:
    execution_id: str
    #: Top-level step id → the step ids it waits for (the resolved graph's ``deps``).
    deps: dict[str, list[str]] = field(default_factory=dict)


@dataclass(slots=True)
class StepInput:
    execution_id: str
    step_id: str


@dataclass(slots=True)
class FinishInput:
    execution_id: str
    status: str
    reason: str | None = None


@workflow.defn(name=EXECUTION_WORKFLOW)
class ExecutionWorkflow:
    def __init__(self) -> None:
        self._cancel_reason: str | None = None
        self._running: dict[str, Any] = {}

    @workflow.signal
    def cancel(self, reason: str) -> None:
        """Stop every running step (each cancels its runs) and end ``cancelled``."""
        if self._cancel_reason is None:
            self._cancel_reason = reason or "cancelled"
        for handle in self._running.values():
            handle.cancel()

    @workflow.run
    async def run(self, job: ExecutionInput) -> str:
        status, reason = await self._steps(job)
        await workflow.execute_activity(
            "execution_finish",
            FinishInput(job.execution_id, status, reason),
            task_queue=EXECUTIONS_QUEUE,
            start_to_close_timeout=CONTROL_TIMEOUT,
            retry_policy=RetryPolicy(maximum_interval=timedelta(seconds=10)),
        )
        return status

    async def _steps(self, job: ExecutionInput) -> tuple[str, str | None]:
        pending = {k: list(v) for k, v in job.deps.items()}
        finished: set[str] = set()
        failure: str | None = None
        while (pending or self._running) and self._cancel_reason is None and failure is None:
            for sid in sorted(s for s, deps in pending.items() if set(deps) <= finished):
                del pending[sid]
                self._running[sid] = workflow.start_activity(
                    "execution_step",
                    StepInput(job.execution_id, sid),
                    task_queue=EXECUTIONS_QUEUE,
                    start_to_close_timeout=STEP_TIMEOUT,
                    heartbeat_timeout=HEARTBEAT_TIMEOUT,
                    retry_policy=_STEP_RETRY,
                    # The end is recorded after the cancelled steps have cancelled their runs.
                    cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                )
            if not self._running:
                failure = "the workflow's graph is stuck (a dependency never ended)"
                break
            await workflow.wait(self._running.values(), return_when=asyncio.FIRST_COMPLETED)
            for sid, handle in list(self._running.items()):
                if not handle.done():
                    continue
                del self._running[sid]
                try:
                    handle.result()
                    finished.add(sid)
                except ActivityError as exc:
                    if self._cancel_reason is None and failure is None:
                        failure = _message(exc)
                except asyncio.CancelledError:
                    pass
        for handle in self._running.values():  # the first failure (or a cancel) stops the rest
            handle.cancel()
        if self._running:
            await workflow.wait(self._running.values())
        if self._cancel_reason is not None:
            return "cancelled", self._cancel_reason
        if failure is not None:
            return "failed", failure
        return "completed", None


def _message(exc: ActivityError) -> str:
    cause = exc.cause
    if isinstance(cause, ApplicationError):
        return cause.message
    return str(cause or exc)


class ExecutionActivities:
    """The activities of an API server: each calls the engine on this server."""

    def __init__(self, steps: ExecutionSteps) -> None:
        self.steps = steps

    @activity.defn(name="execution_step")
    async def step(self, job: StepInput) -> None:
        beat = asyncio.create_task(_heartbeat())
        try:
            await self.steps.run_top_step(job.execution_id, job.step_id)
        except StepError as exc:
            raise ApplicationError(str(exc), type=STEP_FAILED, non_retryable=True) from None
        except asyncio.CancelledError:
            if not activity.is_worker_shutdown():
                raise  # the execution was cancelled (or the step lost to a failure)
            # This server stops: a failure, not a cancel, so another API server takes the step
            # (the SDK would report a shutdown as a cancel, and the execution would end).
            raise ApplicationError(
                "the API server running this step stopped; another one takes it over"
            ) from None
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat

    @activity.defn(name="execution_finish")
    async def finish(self, job: FinishInput) -> None:
        await self.steps.finish_execution(job.execution_id, job.status, job.reason)


async def _heartbeat() -> None:
    while True:
        activity.heartbeat()
        await asyncio.sleep(HEARTBEAT_EVERY)


def executions_worker(client: Client, steps: ExecutionSteps, identity: str) -> Worker:
    acts = ExecutionActivities(steps)
    return Worker(
        client,
        task_queue=EXECUTIONS_QUEUE,
        # The steps' shell commands and the API's work on worker hosts (``on_host``) too.
        workflows=[ExecutionWorkflow, OnHostWorkflow],
        activities=[acts.step, acts.finish],
        identity=identity,
        max_concurrent_activities=500,
        # After an API server dies its executions' next tasks wait this long on its queue.
        sticky_queue_schedule_to_start_timeout=STICKY_TIMEOUT,
    )


async def start_execution(client: Client, execution_id: str, deps: dict[str, list[str]]) -> None:
    with contextlib.suppress(WorkflowAlreadyStartedError):  # started already: it goes on
        await client.start_workflow(
            EXECUTION_WORKFLOW,
            ExecutionInput(execution_id, deps),
            id=execution_workflow_id(execution_id),
            task_queue=EXECUTIONS_QUEUE,
        )


async def cancel_execution(client: Client, execution_id: str, reason: str, wait: float) -> bool:
    """Signal the cancel and wait (up to ``wait`` s) until the end is recorded; False when no
    workflow drives this execution (the engine then records it itself)."""
    handle = client.get_workflow_handle(execution_workflow_id(execution_id))
    try:
        await handle.signal("cancel", reason)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    with contextlib.suppress(TimeoutError, WorkflowFailureError):
        await asyncio.wait_for(handle.result(), wait)
    return True
