"""PostgreSQL's held lane: jobs waiting for the job-order lock, while appends pass them.

A writer runs its batches one after another, so a batch waiting for the job-order lock
(``store.event_sql.JOB_ORDER_LOCK``) would hold up every append queued behind it: the agent
output of all the process's runs. So a batch with jobs only *tries* the lock
(``pg_try_advisory_xact_lock``, its first statement). If another process holds it, the batch
rolls back having done nothing and is split in queue order (:meth:`HeldLane.split`): its jobs,
and what may not pass them, go to the *held lane* (a second connection and task: it commits them
in queue order, each batch waiting for the lock as before); the appends that may pass them are
committed at once. While the held lane has work, every new job joins it, and each new append
passes it or joins it. An append passes when no held item is an append to its run or a job
without a fence (that could write to any run), and every held job is fenced
(``store.fencing``) on another run than the append's and on another attempt than the append's
own fence. Why a run's events keep their queue order: appends queued before a job never wait
for it; an append to the run a held job writes for waits; and a job fenced on run X's attempt
was submitted by a task of that attempt (the fence is a context variable, copied into the tasks
an attempt starts), so an append under another fence or none came from another task (no task
switches fences with a write of its own in flight), and its place in the queue relative to the
job is only the order in which two tasks got there. The one case left is a job fenced on X
writing to another run Y while appends to Y pass it: no job does that (an attempt's jobs write
to its run), and ``Tx`` counts (``Writer.reordered``) and logs it if one ever does. A job that
writes to no run (a worker's heartbeat) is fenced on ``fencing.NO_RUN``, a run no append is
for: appends pass it. The two lanes are two transactions of one process, as two processes would
be: row locks, the commit-order lock, the fencing checks and the order of the ``NOTIFY``
announcements keep numbering, commit order and the hand-off right between them.

Apart from ``store.writer`` because it is the one part of the batching loop that only
PostgreSQL uses; the writer owns the connections and runs the lane's batches
(``Writer._run_batch(batch, held=True)``), this module decides what waits and in which order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from codeyard.store.write_order import Append, Pending

__all__ = ["HeldLane"]


class HeldLane:
    """What waits for the job-order lock, in queue order, and the task that commits it."""

    def __init__(
        self, run_batch: Callable[[list[Pending]], Awaitable[object]], batch_max: int
    ) -> None:
        #: Commits one batch of the lane (the writer's, on its held connection); the time
        #: bound may leave some of it, which it puts back in front (:meth:`put_back`).
        self._run_batch = run_batch
        self._batch_max = batch_max
        #: Held items not taken yet, in queue order.
        self._items: list[Pending] = []
        #: The batch being committed.
        self._batch: list[Pending] = []
        self._task: asyncio.Task[None] | None = None
        #: Appends committed before a job queued ahead of them (tests, diagnostics).
        self.passed = 0

    @property
    def busy(self) -> bool:
        """Whether something waits in the lane (every new write must then be split)."""
        return self._task is not None

    def split(self, batch: list[Pending]) -> tuple[list[Pending], list[Pending]]:
        """``batch`` in queue order, against what the lane has not committed yet: the appends
        that may commit before it, and the rest (jobs always), for the lane.

        An append may pass the held items when none is an append to its run, none is a job
        without a fence (it could write to any run), and every held job is fenced on another
        run's attempt than the append's run and than the append's own fence: such a job was
        submitted from another task (an attempt's context is copied into the tasks it starts),
        so the queue order between the two is only the order in which two tasks got there."""
        held = [*self._batch, *self._items]
        jobs = [p for p in held if not isinstance(p.fn, Append)]
        runs = {p.fn.run_id for p in held if isinstance(p.fn, Append)}
        fences = {p.fence for p in jobs}
        barrier = None in fences
        runs |= {f.run_id for f in fences if f is not None}
        passing: list[Pending] = []
        holding: list[Pending] = []
        for pending in batch:
            fn = pending.fn
            if isinstance(fn, Append):
                if not barrier and fn.run_id not in runs and pending.fence not in fences:
                    passing.append(pending)
                    self.passed += 1 if jobs else 0
                    for job in jobs:
                        assert job.passed is not None  # given below, when it was held
                        job.passed.add(fn.run_id)
                    continue
                runs.add(fn.run_id)
            else:
                if pending.passed is None:  # the same set reaches the job's ``Tx``
                    pending.passed = set()
                jobs.append(pending)
                fences.add(pending.fence)
                if pending.fence is None:
                    barrier = True
                else:
                    runs.add(pending.fence.run_id)
            holding.append(pending)
        return passing, holding

    def hold(self, holding: list[Pending]) -> None:
        """Queue ``holding`` (from :meth:`split`, after its passing part committed: some of that
        was queued before these) behind what the lane holds; its task starts if idle."""
        self._items.extend(holding)
        if self._task is None:
            self._task = asyncio.create_task(self._drain(), name="codeyard-held")

    def put_back(self, rest: list[Pending]) -> None:
        """What the time bound left of the lane's batch: the front of its next one."""
        self._items[:0] = rest

    async def wait(self) -> None:
        """Until the lane has committed what it holds (the writer's stop)."""
        task = self._task
        if task is not None:
            await task

    async def _drain(self) -> None:
        """The lane's batches, in queue order, each waiting for the job-order lock."""
        try:
            while self._items:
                batch = self._items[: self._batch_max]
                del self._items[: len(batch)]
                self._batch = batch
                try:
                    await self._run_batch(batch)
                finally:
                    self._batch = []
        finally:
            self._task = None
