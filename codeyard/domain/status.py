"""The run state machine, as a table.

Every status change of a run goes through :func:`check_transition`; the table below is the
whole truth about which changes are allowed (API.md, "Runs → Status").
"""

from __future__ import annotations

from enum import StrEnum

from codeyard.domain.errors import InvalidTransition


class RunStatus(StrEnum):
    DRAFT = "draft"
    QUEUED = "queued"
    PREPARING = "preparing"
    RUNNING = "running"
    WAITING = "waiting"
    PAUSED = "paused"
    REVIEW = "review"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"


S = RunStatus

#: Statuses in which an agent, a worktree step or the queue is working on the run.
ACTIVE: frozenset[RunStatus] = frozenset({S.QUEUED, S.PREPARING, S.RUNNING, S.WAITING})
#: Statuses after which nothing happens without an operator.
IDLE: frozenset[RunStatus] = frozenset(
    {S.DRAFT, S.PAUSED, S.REVIEW, S.COMPLETED, S.FAILED, S.CANCELLED, S.INTERRUPTED}
)

TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    S.DRAFT: frozenset({S.QUEUED, S.CANCELLED}),
    S.QUEUED: frozenset({S.PREPARING, S.RUNNING, S.CANCELLED, S.FAILED}),
    S.PREPARING: frozenset({S.RUNNING, S.FAILED, S.CANCELLED, S.INTERRUPTED}),
    S.RUNNING: frozenset({S.WAITING, S.PAUSED, S.REVIEW, S.FAILED, S.CANCELLED, S.INTERRUPTED}),
    S.WAITING: frozenset({S.RUNNING, S.PAUSED, S.FAILED, S.CANCELLED, S.INTERRUPTED}),
    S.PAUSED: frozenset({S.QUEUED, S.CANCELLED}),
    S.REVIEW: frozenset({S.QUEUED, S.COMPLETED}),
    S.FAILED: frozenset({S.QUEUED, S.COMPLETED}),
    S.CANCELLED: frozenset({S.QUEUED, S.COMPLETED}),
    S.INTERRUPTED: frozenset({S.QUEUED, S.CANCELLED}),
    S.COMPLETED: frozenset(),
}

#: What each operator action requires, so the API can refuse with a clear 409.
ACTION_FROM: dict[str, frozenset[RunStatus]] = {
    "start": frozenset({S.DRAFT}),
    "cancel": ACTIVE | {S.DRAFT, S.PAUSED, S.INTERRUPTED},
    "pause": frozenset({S.RUNNING, S.WAITING}),
    "resume": frozenset({S.PAUSED, S.INTERRUPTED, S.FAILED}),
    "message": frozenset({S.RUNNING, S.WAITING, S.REVIEW, S.FAILED, S.CANCELLED}),
    "delete": IDLE,
    "resolve": frozenset({S.REVIEW, S.FAILED, S.CANCELLED}),
}


def can_transition(current: RunStatus, to: RunStatus) -> bool:
    return to in TRANSITIONS[current]


def check_transition(current: RunStatus, to: RunStatus) -> None:
    """Raise :class:`InvalidTransition` unless ``current → to`` is in the table."""
    if not can_transition(current, to):
        raise InvalidTransition(
            f"A run in status '{current}' cannot become '{to}'.", current_status=str(current)
        )


def check_action(action: str, current: RunStatus) -> None:
    """Raise :class:`InvalidTransition` when an operator action is not valid in ``current``."""
    allowed = ACTION_FROM[action]
    if current not in allowed:
        names = ", ".join(sorted(str(s) for s in allowed))
        raise InvalidTransition(
            f"Cannot {action} a run in status '{current}'; it must be one of: {names}.",
            current_status=str(current),
        )
