"""The run state machine, table-driven: every pair of statuses is either allowed or refused."""

from __future__ import annotations

import itertools

import pytest

from codeyard.domain.errors import InvalidTransition
from codeyard.domain.status import ACTION_FROM, ACTIVE, RunStatus, check_action, check_transition

S = RunStatus

# The expected table, written out independently of the implementation's.
ALLOWED = {
    (S.DRAFT, S.QUEUED),
    (S.DRAFT, S.CANCELLED),
    (S.QUEUED, S.PREPARING),
    (S.QUEUED, S.RUNNING),
    (S.QUEUED, S.CANCELLED),
    (S.QUEUED, S.FAILED),
    (S.PREPARING, S.RUNNING),
    (S.PREPARING, S.FAILED),
    (S.PREPARING, S.CANCELLED),
    (S.PREPARING, S.INTERRUPTED),
    (S.RUNNING, S.WAITING),
    (S.RUNNING, S.PAUSED),
    (S.RUNNING, S.REVIEW),
    (S.RUNNING, S.FAILED),
    (S.RUNNING, S.CANCELLED),
    (S.RUNNING, S.INTERRUPTED),
    (S.WAITING, S.RUNNING),
    (S.WAITING, S.PAUSED),
    (S.WAITING, S.FAILED),
    (S.WAITING, S.CANCELLED),
    (S.WAITING, S.INTERRUPTED),
    (S.PAUSED, S.QUEUED),
    (S.PAUSED, S.CANCELLED),
    (S.REVIEW, S.QUEUED),
    (S.REVIEW, S.COMPLETED),
    (S.FAILED, S.QUEUED),
    (S.FAILED, S.COMPLETED),
    (S.CANCELLED, S.QUEUED),
    (S.CANCELLED, S.COMPLETED),
    (S.INTERRUPTED, S.QUEUED),
    (S.INTERRUPTED, S.CANCELLED),
}

PAIRS = list(itertools.product(S, S))


@pytest.mark.parametrize(("current", "to"), [p for p in PAIRS if p in ALLOWED])
def test_allowed_transition(current: RunStatus, to: RunStatus) -> None:
    check_transition(current, to)


@pytest.mark.parametrize(("current", "to"), [p for p in PAIRS if p not in ALLOWED])
def test_refused_transition_names_current_status(current: RunStatus, to: RunStatus) -> None:
    with pytest.raises(InvalidTransition) as info:
        check_transition(current, to)
    assert info.value.extra["current_status"] == str(current)
    assert str(current) in info.value.detail and str(to) in info.value.detail


def test_completed_is_final() -> None:
    for to in S:
        with pytest.raises(InvalidTransition):
            check_transition(S.COMPLETED, to)


# Operator actions, as API.md's endpoint table states them.
ACTIONS = {
    "start": {S.DRAFT},
    "pause": {S.RUNNING, S.WAITING},
    "resume": {S.PAUSED, S.INTERRUPTED, S.FAILED},
    "cancel": set(ACTIVE) | {S.DRAFT, S.PAUSED, S.INTERRUPTED},
    "message": {S.RUNNING, S.WAITING, S.REVIEW, S.FAILED, S.CANCELLED},
    "delete": {S.DRAFT, S.PAUSED, S.REVIEW, S.COMPLETED, S.FAILED, S.CANCELLED, S.INTERRUPTED},
    "resolve": {S.REVIEW, S.FAILED, S.CANCELLED},
}


@pytest.mark.parametrize(("action", "current"), list(itertools.product(ACTIONS, S)))
def test_actions(action: str, current: RunStatus) -> None:
    if current in ACTIONS[action]:
        check_action(action, current)
    else:
        with pytest.raises(InvalidTransition) as info:
            check_action(action, current)
        assert info.value.extra["current_status"] == str(current)


def test_every_action_lands_in_an_allowed_transition() -> None:
    landing = {
        "start": S.QUEUED,
        "pause": S.PAUSED,
        "resume": S.QUEUED,
        "cancel": S.CANCELLED,
        "resolve": S.COMPLETED,
    }
    for action, to in landing.items():
        for current in ACTION_FROM[action]:
            check_transition(current, to)
