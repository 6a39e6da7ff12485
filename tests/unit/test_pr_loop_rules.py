"""The pure rules of the pull-request loop (issue 21): which run may take another turn, and
what a GitHub delivery means for it."""

from __future__ import annotations

from typing import Any

import pytest

from codeyard.domain.errors import InvalidTransition
from codeyard.domain.status import (
    RunStatus,
    can_transition,
    check_action,
    check_transition,
    pull_request_open,
)
from codeyard.github.feedback import Signal, ci_key, classify, is_bot, pull_repo, scope
from codeyard.services.retention import reclaimable

S = RunStatus
OPEN = {"url": "https://github.com/o/r/pull/3", "number": 3, "state": "open"}


def test_a_completed_run_is_queued_again_only_while_its_pull_request_is_open() -> None:
    assert not can_transition(S.COMPLETED, S.QUEUED)
    assert can_transition(S.COMPLETED, S.QUEUED, pr_open=True)
    with pytest.raises(InvalidTransition):
        check_transition(S.COMPLETED, S.QUEUED)
    for other in (S.RUNNING, S.REVIEW, S.FAILED, S.CANCELLED):
        assert not can_transition(S.COMPLETED, other, pr_open=True)  # only queued
    check_action("message", S.COMPLETED, pr_open=True)
    with pytest.raises(InvalidTransition, match="while its pull request is open"):
        check_action("message", S.COMPLETED)
    with pytest.raises(InvalidTransition):
        check_action("resolve", S.COMPLETED, pr_open=True)  # landing again is not offered


def test_which_stored_pull_requests_count_as_open() -> None:
    assert pull_request_open(OPEN)
    assert not pull_request_open(None)
    assert not pull_request_open({**OPEN, "state": "merged"})
    closed_first = {**OPEN, "state": "closed", "others": [{**OPEN, "number": 4}]}
    assert pull_request_open(closed_first)  # one repository's pull request is still open
    assert not pull_request_open({**OPEN, "state": "closed", "others": [None]})


def _check(event: str, conclusion: str | None, sha: str | None = "abc") -> dict[str, Any]:
    return {"action": "completed", event: {"conclusion": conclusion, "head_sha": sha}}


@pytest.mark.parametrize("event", ["check_run", "check_suite"])
def test_failed_checks_are_signals_and_other_outcomes_are_not(event: str) -> None:
    for conclusion in ("failure", "timed_out", "startup_failure"):
        assert classify(event, _check(event, conclusion)) == Signal("ci_failed", sha="abc")
    for conclusion in ("success", "cancelled", "neutral", "skipped", None):
        assert classify(event, _check(event, conclusion)) is None
    assert classify(event, _check(event, "failure", sha=None)) is None
    requested = {**_check(event, "failure"), "action": "requested"}
    assert classify(event, requested) is None


def test_commit_statuses_reviews_comments_and_closing() -> None:
    assert classify("status", {"sha": "s1", "state": "error"}) == Signal("ci_failed", sha="s1")
    assert classify("status", {"sha": "s1", "state": "pending"}) is None
    person = {"login": "octocat", "type": "User"}
    review = {"id": 9, "state": "CHANGES_REQUESTED", "user": person, "body": "no"}
    got = classify("pull_request_review", {"action": "submitted", "review": review})
    assert got is not None and got.kind == "changes_requested" and got.review == review
    approved = {**review, "state": "approved"}
    assert classify("pull_request_review", {"action": "submitted", "review": approved}) is None
    bot = {**review, "user": {"login": "ci[bot]", "type": "Bot"}}
    assert classify("pull_request_review", {"action": "submitted", "review": bot}) is None
    said = {"action": "created", "comment": {"user": person}}
    assert classify("issue_comment", said) == Signal("human_comment")
    botsaid = {"action": "created", "comment": {"user": {"login": "x[bot]"}}}
    assert classify("issue_comment", botsaid) is None
    merged = {"action": "closed", "pull_request": {"merged": True, "state": "closed"}}
    assert classify("pull_request", merged) == Signal("pr_state", state="merged")
    closed = {"action": "closed", "pull_request": {"merged": False, "state": "closed"}}
    assert classify("pull_request", closed) == Signal("pr_state", state="closed")
    assert classify("pull_request", {"action": "synchronize", "pull_request": {}}) is None


def test_bots_keys_and_repositories() -> None:
    assert is_bot({"login": "dependabot[bot]", "type": "User"})
    assert is_bot({"login": "app", "type": "Bot"}) and is_bot(None)
    assert not is_bot({"login": "octocat", "type": "User"})
    assert pull_repo(OPEN) == "o/r"
    assert pull_repo({"url": "https://ghe.example.com/team/tool/pull/12"}) == "team/tool"
    assert pull_repo({"url": "https://github.com/o/r"}) is None
    assert ci_key("o/r", 3, "a") != ci_key("o/r", 3, "b") != ci_key("o/r", 4, "b")
    assert scope("o/r", 3) == "pr:o/r#3"


def test_retention_keeps_the_worktree_of_a_run_whose_pull_request_is_open() -> None:
    run = {
        "worktrees": {"r": "/w"},
        "status": "completed",
        "finished_at": "2020-01-01T00:00:00.000Z",
        "pull_request": OPEN,
    }
    assert not reclaimable(run, "2026-01-01T00:00:00.000Z")
    assert reclaimable({**run, "pull_request": {**OPEN, "state": "merged"}}, "2026-01-01")
    assert reclaimable({**run, "pull_request": None}, "2026-01-01")
