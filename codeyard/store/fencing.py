"""Fencing: writes made for one attempt of a run are refused once the run moved to a newer one.

An executor takes a run by raising ``runs.attempt`` (``store.runs.begin_attempt``) and runs the
attempt's work with :data:`current` set to ``Fence(run_id, attempt)``. Every event the writer
appends for that run in that context (and so every status change, checkpoint row and landing
record, which all emit an event in the same transaction) is checked against the row's
``attempt`` in the writer's transaction: a stale attempt's write fails with :class:`StaleAttempt`
and nothing of it is stored. Writes made outside an attempt (the API, recovery) are not fenced:
the control plane is the authority that moves runs between attempts.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from codeyard.domain.errors import Conflict


@dataclass(frozen=True, slots=True)
class Fence:
    run_id: str
    attempt: int


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
