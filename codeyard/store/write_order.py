"""What the writer's queue holds, and which of its items may commit before which.

A :class:`Pending` is one caller's write: a plain append (:class:`Append`) or a job run inside
the batch's transaction. Queue order is commit order, but for one rule here, :func:`lift`:
urgent jobs go first (issue 15: with 60 agents, an approval's answer waited ~0.25 s p99 behind
their queued appends). A job someone waits on and that writes to one run R
(``Writer.run(urgent_for=R)``: an approval's answer, an agent's ask, a tool call's decision)
is committed in a batch of its own ahead of the items queued before it, unless one of them may
write to R. So R's own writes keep their queue order, and with it R's ``seq`` numbering. (The
other exception, PostgreSQL's held lane, is ``store.held_lane``: it depends on the writer's
state.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from codeyard.domain.events import NewEvent
from codeyard.store import fencing

if TYPE_CHECKING:
    from codeyard.store.writer import Tx

__all__ = ["Append", "Job", "Pending", "lift"]

Job = Callable[["Tx"], Awaitable[Any]]


@dataclass(slots=True)
class Append:
    """A plain ``Writer.append``: handled inline by the batch, without a job or a ``Tx``."""

    run_id: str
    events: Sequence[NewEvent]
    run_values: dict[str, Any] | None


@dataclass(slots=True)
class Pending:
    fn: Job | Append
    savepoint: bool
    #: The attempt the caller writes for, taken from its context when it submitted.
    fence: fencing.Fence | None = field(default_factory=fencing.current.get)
    future: asyncio.Future[Any] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    #: A job's: the runs of writes queued after it that committed before it (``HeldLane.split``,
    #: :func:`lift`).
    passed: set[str] | None = None
    #: An urgent job's one run: it may be taken ahead of queued writes of other runs (:func:`lift`).
    urgent_for: str | None = None


def lift(batch: list[Pending]) -> tuple[list[Pending], list[Pending], int]:
    """``batch`` in queue order: the urgent jobs that may be committed ahead of the items queued
    before them, the rest in queue order (``ahead`` is empty: as it was), and how many urgent
    jobs passed at least one item.

    An urgent job for run R goes ahead unless an item before it that stays may write to R: an
    append to R, an item fenced on R's attempt (an attempt's jobs write to its run), an urgent
    job for R left behind, or a job with neither fence nor declared run (it could write to any
    run; it and all after it keep their place). What the urgent job writes is R's row and events
    and rows of R's own (its approvals, its decisions; a remembered answer's policy): no item it
    passes writes to R, so R's events keep their queue order and their numbering; and items it
    passes were submitted by other tasks, whose order against it is only which got there first.
    A fenced job it passes is told so (``passed``): if it writes to R after all, the writer
    counts it (``Writer.reordered``)."""
    if not any(p.urgent_for is not None for p in batch):
        return [], batch, 0
    ahead: list[Pending] = []
    rest: list[Pending] = []
    lifted = 0
    runs: set[str] = set()  # runs an item left behind may write to
    barrier = False
    for pending in batch:
        run_id = pending.urgent_for
        if run_id is not None and not barrier and run_id not in runs:
            ahead.append(pending)
            lifted += 1 if rest else 0
            for passed in rest:
                if not isinstance(passed.fn, Append):  # a fenced job on another run
                    if passed.passed is None:
                        passed.passed = set()
                    passed.passed.add(run_id)
            continue
        rest.append(pending)
        if run_id is not None:
            runs.add(run_id)
        if isinstance(pending.fn, Append):
            runs.add(pending.fn.run_id)
        elif run_id is None and pending.fence is None:
            barrier = True
        if pending.fence is not None:
            runs.add(pending.fence.run_id)
    return ahead, rest, lifted
