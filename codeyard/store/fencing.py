"""Fencing: writes made for one attempt of a run are refused once the run moved to a newer one.

An executor takes a run by raising ``runs.attempt`` (``store.runs.begin_attempt``) and runs the
attempt's work with :data:`current` set to ``Fence(run_id, attempt)``. Every event the writer
appends for that run in that context (and so every status change, checkpoint row and landing
record, which all emit an event in the same transaction) is checked against the row's
``attempt`` in the writer's transaction: a stale attempt's write fails with :class:`StaleAttempt`
and nothing of it is stored. Writes made outside an attempt (the API, recovery) are not fenced:
the control plane is the authority that moves runs between attempts.

Side effects outside the database (a checkpoint pushed to the shared remote, a landing that
moves a target branch, a push to ``origin``, a pull request opened) cannot roll back with a
refused transaction, so they are checked *before* they act (:func:`verify`). Landing is done by
the control plane, but against the run as it read it: :func:`acting_for` fences it on the
attempt it read, so a run that a new attempt took meanwhile (a message queued a turn that
started on some host) is not merged, pushed or opened as a pull request from stale state.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard.domain.errors import Conflict, NotFound
from codeyard.store import schema


@dataclass(frozen=True, slots=True)
class Fence:
    run_id: str
    attempt: int


#: The fence of a job that writes to no run at all (the ``workers`` row's heartbeat): no run's
#: write is checked against it, and the PostgreSQL writer lets appends pass it while it waits
#: for the job-order lock, as it lets them pass a job fenced on another run (``store.writer``).
NO_RUN = Fence("", 0)

#: The attempt the current task writes for (copied into tasks it starts, like any context var).
current: ContextVar[Fence | None] = ContextVar("codeyard_fence", default=None)


class StaleAttempt(Conflict):
    """A write for an attempt the run has moved past: a worker that lost the run came back."""

    def __init__(self, run_id: str, attempt: int, current_attempt: int) -> None:
        super().__init__(
            f"Run {run_id} is on attempt {current_attempt}; a write of attempt {attempt} "
            "was refused (that attempt lost the run).",
        )
        self.run_id = run_id
        self.attempt = attempt
        self.current_attempt = current_attempt


def check(fence: Fence | None, run_id: str, stored_attempt: int) -> None:
    """Raise :class:`StaleAttempt` when ``fence`` is for ``run_id`` and not its current attempt."""
    if fence is not None and fence.run_id == run_id and fence.attempt != stored_attempt:
        raise StaleAttempt(run_id, fence.attempt, stored_attempt)


@contextmanager
def acting_for(run: dict[str, Any]) -> Iterator[Fence]:
    """Fence what follows on the attempt ``run`` (a row as read) was on; inside an attempt
    already (an executor's task), that attempt's fence stays."""
    fence = current.get()
    if fence is not None and fence.run_id == run["id"]:
        yield fence
        return
    fence = Fence(str(run["id"]), int(run["attempt"]))
    token = current.set(fence)
    try:
        yield fence
    finally:
        current.reset(token)


async def verify(engine: AsyncEngine, fence: Fence | None = None) -> None:
    """Raise :class:`StaleAttempt` when ``fence`` (default: :data:`current`) is stale now.

    Called right before a side effect no transaction can take back (a git push, a merge, a pull
    request): the run's attempt is read from the database, so a lost worker or a landing
    decided on an old read acts on nothing."""
    fence = fence if fence is not None else current.get()
    if fence is None:
        return
    async with engine.connect() as conn:
        stored = (
            await conn.execute(
                select(schema.runs.c.attempt).where(schema.runs.c.id == fence.run_id)
            )
        ).scalar()
    if stored is None:
        raise NotFound(f"Run {fence.run_id} does not exist.")
    check(fence, fence.run_id, int(stored))
