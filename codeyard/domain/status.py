"""The run state machine, as a table.

Every status change of a run goes through :func:`check_transition`; the table below is the
whole truth about which changes are allowed (API.md, "Runs → Status").
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

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

#: Transitions allowed only while the run's pull request is open on its forge (issue 21).
#:
#: Opening a pull request resolves a run locally: it becomes ``completed`` with resolution
#: ``pr_created``, and tickets, workflows and analytics count it as done. But the pull request
#: lives on: CI fails on it, reviewers request changes. Rather than a new status (every client,
#: ticket rule and workflow step would have to learn it) or leaving the run in ``review`` (it
#: would look unresolved, and landing it locally again would be offered), a completed run whose
#: pull request is open may be queued for another turn. After that turn its branch is pushed to
#: the pull request and it is ``completed`` again; once the pull request is merged or closed,
#: ``completed`` is final as before.
WHILE_PR_OPEN: dict[RunStatus, frozenset[RunStatus]] = {S.COMPLETED: frozenset({S.QUEUED})}

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
#: Operator actions that are also valid while the run's pull request is open (see above).
ACTION_WHILE_PR_OPEN: dict[str, frozenset[RunStatus]] = {"message": frozenset({S.COMPLETED})}


def pull_request_open(pull_request: Mapping[str, Any] | None) -> bool:
    """True when the run's stored pull request (or one of its ``others``, one per repository)
    is open. ``state`` is what the forge said last: at creation, then from webhooks or polls."""
    if not isinstance(pull_request, Mapping):
        return False
    pulls = [pull_request, *(pull_request.get("others") or [])]
    return any(isinstance(p, Mapping) and p.get("state") == "open" for p in pulls)


def can_transition(current: RunStatus, to: RunStatus, *, pr_open: bool = False) -> bool:
    if to in TRANSITIONS[current]:
        return True
    return pr_open and to in WHILE_PR_OPEN.get(current, frozenset())


def check_transition(current: RunStatus, to: RunStatus, *, pr_open: bool = False) -> None:
    """Raise :class:`InvalidTransition` unless ``current → to`` is in the table (or, with
    ``pr_open``, in :data:`WHILE_PR_OPEN`)."""
    if not can_transition(current, to, pr_open=pr_open):
        raise InvalidTransition(
            f"A run in status '{current}' cannot become '{to}'.", current_status=str(current)
        )


def check_action(action: str, current: RunStatus, *, pr_open: bool = False) -> None:
    """Raise :class:`InvalidTransition` when an operator action is not valid in ``current``
    (with ``pr_open``, :data:`ACTION_WHILE_PR_OPEN` widens it)."""
    allowed = ACTION_FROM[action]
    if pr_open:
        allowed = allowed | ACTION_WHILE_PR_OPEN.get(action, frozenset())
    if current not in allowed:
        names = ", ".join(sorted(str(s) for s in allowed))
        also = (
            " (a completed run also while its pull request is open)"
            if current in ACTION_WHILE_PR_OPEN.get(action, frozenset())
            else ""
        )
        raise InvalidTransition(
            f"Cannot {action} a run in status '{current}'; it must be one of: {names}{also}.",
            current_status=str(current),
        )
