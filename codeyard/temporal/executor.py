"""``TemporalExecutor``: the executor of a stateless API server (``serve --executor temporal``).

It holds nothing about runs: a submit is a signal-with-start of the run's workflow, every other
control an update whose result says whether the run's host took it. Any number of API servers
can do this for the same run; the workflow orders what they send.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TypeVar

from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from codeyard.checks.runner import SuiteResult
from codeyard.executor.durable_executions import ExecutionSteps
from codeyard.executor.interface import STOPS, ApprovalAnswer, Message, ModelSwitch, Signal
from codeyard.run_workspace.on_host import (
    ChecksJob,
    ShellJob,
    ShellOutcome,
    TreesJob,
    WorktreeJob,
)
from codeyard.temporal import executions, on_host
from codeyard.temporal.contracts import SHARED_QUEUE, WORKFLOW_NAME, Delivery, workflow_id

log = logging.getLogger(__name__)
R = TypeVar("R")


def delivery_of(run_id: str, signal: Signal) -> Delivery:
    """The wire form of an executor signal."""
    if isinstance(signal, Message):
        return Delivery(run_id, "answer" if signal.answer else "offer", text=signal.text)
    if isinstance(signal, ApprovalAnswer):
        answer = {k: None if v is None else str(v) for k, v in signal.answer.items()}
        return Delivery(run_id, "approval", approval_id=signal.approval_id, answer=answer)
    if isinstance(signal, ModelSwitch):
        return Delivery(run_id, "model")
    return Delivery(run_id, "stop", status=STOPS[signal.kind], reason=signal.reason)


class TemporalExecutor:
    """Implements ``executor.interface.Executor`` on a Temporal cluster."""

    def __init__(self, address: str, namespace: str = "default") -> None:
        self._address = address
        self._namespace = namespace
        self._client: Client | None = None
        self._executions: asyncio.Task[None] | None = None
        self._executions_worker: Worker | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            raise RuntimeError("The Temporal executor is not started.")
        return self._client

    async def start(self) -> None:
        """Connect; recovery is Temporal's (workflows and their timers are durable)."""
        self._client = await Client.connect(self._address, namespace=self._namespace)

    async def shutdown(self) -> None:
        """Nothing runs here: runs keep going on the workers."""
        self._client = None

    async def submit(self, run_id: str) -> None:
        await self.client.start_workflow(
            WORKFLOW_NAME,
            run_id,
            id=workflow_id(run_id),
            task_queue=SHARED_QUEUE,
            start_signal="submit",
        )

    async def signal(self, run_id: str, signal: Signal) -> bool:
        handle = self.client.get_workflow_handle(workflow_id(run_id))
        try:
            delivered: bool = await handle.execute_update(
                "deliver", delivery_of(run_id, signal), result_type=bool
            )
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:  # no workflow: nothing live anywhere
                return False
            raise
        except WorkflowUpdateFailedError as exc:  # the host went away while delivering
            log.warning("run %s: %s was not delivered: %s", run_id, signal.kind, exc)
            return False
        return delivered

    def waiting_on(self, approval_id: str) -> str | None:
        """Runs go on the workers, never in this process."""
        return None

    def deliver_now(self, run_id: str, signal: Signal) -> bool:
        """Runs go on the workers, never in this process: :meth:`signal` delivers."""
        return False

    def is_live(self, run_id: str) -> bool:
        """Not known here without a round trip; the run row's status is the truth."""
        return False

    async def wait_stopped(self, run_id: str) -> None:
        """A delivered stop returns after the run landed; nothing else to wait for."""

    # -- executions.DurableExecutions: workflow executions as Temporal workflows ---------------

    async def serve_executions(self, steps: ExecutionSteps) -> None:
        """Poll the executions queue: this API server runs execution workflows and steps."""
        worker = executions.executions_worker(self.client, steps, f"api-{socket.gethostname()}")
        self._executions = asyncio.create_task(worker.run())
        self._executions_worker = worker

    async def stop_executions(self) -> None:
        """Steps in progress here end as failures that Temporal gives to another API server."""
        if self._executions_worker is not None:
            try:  # bounded: an unreachable Temporal must not hold the server's shutdown
                await asyncio.wait_for(self._executions_worker.shutdown(), 30)
            except TimeoutError:
                log.warning("the executions worker did not stop within 30 s")
        if self._executions is not None:
            self._executions.cancel()
            await asyncio.gather(self._executions, return_exceptions=True)
        self._executions = self._executions_worker = None

    async def start_execution(self, execution_id: str, deps: dict[str, list[str]]) -> None:
        await executions.start_execution(self.client, execution_id, deps)

    async def cancel_execution(self, execution_id: str, reason: str) -> bool:
        return await executions.cancel_execution(self.client, execution_id, reason, 60.0)

    # -- run_workspace.on_host.OnWorktreeHost: work in a worktree, on the host that holds it ----

    async def run_shell(self, job: ShellJob) -> ShellOutcome:
        """A workflow step's command."""
        return await on_host.run_shell(self.client, job)

    async def run_checks(self, job: ChecksJob) -> SuiteResult:
        """A run's check suite (its events are stored by the host)."""
        return await on_host.run_checks(self.client, job)

    async def worktree_trees(self, job: TreesJob) -> dict[str, str]:
        """The state of a run's worktrees (does a check suite's result still match them?)."""
        return await on_host.run_trees(self.client, job)

    async def in_worktrees(self, job: WorktreeJob, result: type[R]) -> R:
        """A git operation in a run's worktrees (diff, landing's commit, discard…)."""
        return await on_host.run_worktree(self.client, job, result)

    async def finish(self, run_id: str) -> None:
        """End the run's workflow early (deleted or resolved)."""
        try:
            await self.client.get_workflow_handle(workflow_id(run_id)).signal("finish")
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
