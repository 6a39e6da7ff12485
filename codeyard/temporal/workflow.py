"""The durable run: one workflow per run, alive while the run has work.

A submit (the run was queued) arrives as a signal; operator answers, approval answers and
stops as updates, each delivered to the run's host by a short activity on that host's queue
while the drive (an activity on the same queue) runs; a stop is an explicit kill there, not a
heartbeat-borne activity cancel (which waits up to 0.8 x the heartbeat timeout). When the
host stops heartbeating the drive times out and the run moves to whichever worker takes the
placement activity from the shared queue, which restores the worktree from the last pushed
checkpoint (``codeyard.temporal.failover``). Completion is the drive activity's result: there
is no separate "done" report that could be lost.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, TimeoutType
from temporalio.exceptions import TimeoutError as ActivityTimeout

with workflow.unsafe.imports_passed_through():
    from codeyard.temporal.contracts import (
        CONTROL_TIMEOUT,
        HEARTBEAT_TIMEOUT,
        HOST_PICKUP_TIMEOUT,
        IDLE_TIMEOUT,
        MAX_FAILOVERS,
        SHARED_QUEUE,
        WORKFLOW_NAME,
        Delivery,
        DriveInput,
        DriveResult,
        PlaceInput,
        host_queue,
    )

_ONCE = RetryPolicy(maximum_attempts=1)
#: Deliveries retry briefly (a host busy or restarting its poller); a dead host is the
#: drive's heartbeat timeout's business, and the caller falls back to the durable state.
_DELIVERY_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_interval=timedelta(seconds=2),
    maximum_attempts=5,
)


def _host_lost(exc: ActivityError) -> bool:
    """The drive ended because its host went silent (or never picked it up)."""
    cause = exc.cause
    return isinstance(cause, ActivityTimeout) and cause.type in (
        TimeoutType.HEARTBEAT,
        TimeoutType.SCHEDULE_TO_START,
    )


def _never_began(exc: ActivityError) -> bool:
    """The lost drive never beat once: its host never began it (it did not pick it up, or a
    poll left by the host's dead predecessor took it), so it ran nothing of the run."""
    cause = exc.cause
    return isinstance(cause, ActivityTimeout) and not cause.last_heartbeat_details


@workflow.defn(name=WORKFLOW_NAME)
class RunWorkflow:
    def __init__(self) -> None:
        self._submits = 0
        self._driving = False
        self._finished = False
        #: The host holding the run's worktree ("" until placed).
        self._host = ""
        self._attempt = 0

    @workflow.signal
    def submit(self) -> None:
        """The run was queued (created, started, resumed, messaged after review)."""
        self._submits += 1

    @workflow.update
    async def deliver(self, item: Delivery) -> bool:
        """Hand an answer, an approval's answer, a queued-message nudge or a stop to the live
        attempt, on its host; True once the host took it (for a stop: the run has landed).
        False when nothing is being driven: the caller then changes the run durably itself."""
        if item.kind == "stop":
            self._submits = 0  # a stop also drops a drive that was asked for but not begun
        if not self._driving or not self._host:
            return False
        delivered: bool = await workflow.execute_activity(
            "deliver",
            item,
            task_queue=host_queue(self._host),
            start_to_close_timeout=CONTROL_TIMEOUT,
            schedule_to_close_timeout=CONTROL_TIMEOUT * 2,
            retry_policy=_DELIVERY_RETRY,
        )
        return delivered

    @workflow.signal
    def finish(self) -> None:
        """The run is deleted or resolved: nothing more to drive."""
        self._finished = True

    @workflow.query
    def host(self) -> str:
        return self._host

    @workflow.query
    def attempt(self) -> int:
        return self._attempt

    @workflow.run
    async def run(self, run_id: str) -> str:
        while True:
            try:
                await workflow.wait_condition(
                    lambda: self._submits > 0 or self._finished, timeout=IDLE_TIMEOUT
                )
            except TimeoutError:
                break
            if self._finished:
                break
            self._submits = 0
            await self._drive(run_id)
            if workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(run_id)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return "finished" if self._finished else "idle"

    async def _place(self, run_id: str, gone: list[str]) -> str:
        """The host for a run without one: the least-loaded live host (``HostRuntime.place``)
        but the ``gone`` ones, decided by whichever worker takes the placement from the shared
        queue."""
        host: str = await workflow.execute_activity(
            "place",
            PlaceInput(run_id, list(gone)),
            task_queue=SHARED_QUEUE,
            start_to_close_timeout=CONTROL_TIMEOUT,
            retry_policy=RetryPolicy(maximum_attempts=5),
        )
        return host

    async def _drive(self, run_id: str) -> None:
        lost = ""  # the host that last ran the run, when it was lost (the take-over names it)
        gone: list[str] = []  # hosts lost during this drive: none is chosen again
        for _ in range(MAX_FAILOVERS + 1):
            if not self._host:
                self._host = await self._place(run_id, gone)
                if not self._host:  # no live host can serve it: the run was failed, saying why
                    return
            self._attempt += 1
            self._driving = True
            try:
                await workflow.execute_activity(
                    "drive",
                    DriveInput(run_id, self._attempt, lost),
                    result_type=DriveResult,
                    task_queue=host_queue(self._host),
                    start_to_close_timeout=timedelta(hours=24),
                    schedule_to_start_timeout=HOST_PICKUP_TIMEOUT,
                    heartbeat_timeout=HEARTBEAT_TIMEOUT,
                    retry_policy=_ONCE,
                )
                return
            except ActivityError as exc:
                if not _host_lost(exc):
                    workflow.logger.warning("drive of run %s failed: %s", run_id, exc)
                    return
                workflow.logger.warning("host %s lost run %s; moving it", self._host, run_id)
                gone.append(self._host)
                if not (lost and _never_began(exc)):  # else the run is still where ``lost`` left it
                    lost = self._host
                self._host = ""
            finally:
                self._driving = False
