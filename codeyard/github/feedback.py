"""What a GitHub delivery or poll means for the pull-request loop (issue 21): pure, no I/O.

A delivery about a run's pull request is one of a few signals: CI failed on a head commit, a
reviewer requested changes, a person commented (which resets the fix loop's cap), the pull
request was merged or closed (the run is then done for good), or a branch was pushed (when it
is the base of an open pull request, the run branch is rebased onto it). Everything else only
goes on the run's timeline as ``pr.updated``. The keys below are what the feedback ledger
remembers a failure by, so each is handed to the agent once: one CI turn per (pull request,
head SHA), one review turn per review.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

__all__ = [
    "FAILED_CONCLUSIONS",
    "FAILED_STATES",
    "Signal",
    "ci_key",
    "classify",
    "is_bot",
    "pull_repo",
    "review_key",
    "scope",
]

#: Check run / suite conclusions that hand the failure to the agent (not ``cancelled``: a
#: person or a newer push cancelled it, nothing to fix).
FAILED_CONCLUSIONS = frozenset({"failure", "timed_out", "startup_failure"})
#: Commit status states (the older statuses API, used by external CI services).
FAILED_STATES = frozenset({"failure", "error"})

Kind = Literal["ci_failed", "changes_requested", "human_comment", "pr_state", "base_moved"]


@dataclass(frozen=True, slots=True)
class Signal:
    """``sha``: the head commit a CI failure is on; ``review``: the review that requested
    changes (``id``, ``body``, ``user``); ``state``: ``open``, ``closed`` or ``merged``;
    ``branch``: the base branch a push moved."""

    kind: Kind
    sha: str | None = None
    review: Mapping[str, Any] | None = None
    state: str | None = None
    branch: str | None = None


def is_bot(user: Mapping[str, Any] | None) -> bool:
    """GitHub Apps and bots (``dependabot[bot]``, ``type: Bot``) are not people: their comments
    do not reset the cap, and their reviews do not start turns (no bot-authored loops)."""
    if not isinstance(user, Mapping):
        return True
    return user.get("type") == "Bot" or str(user.get("login", "")).endswith("[bot]")


def classify(event: str, payload: Mapping[str, Any]) -> Signal | None:
    """The loop's meaning of one delivery, or None when it only goes on the timeline."""
    action = payload.get("action")
    if event == "pull_request" and action in ("closed", "reopened"):
        pr = payload.get("pull_request") or {}
        state = "merged" if pr.get("merged") else str(pr.get("state") or "closed")
        return Signal("pr_state", state=state)
    if event in ("check_run", "check_suite") and action == "completed":
        item = payload.get(event) or {}
        if item.get("conclusion") in FAILED_CONCLUSIONS and item.get("head_sha"):
            return Signal("ci_failed", sha=str(item["head_sha"]))
        return None
    ref = str(payload.get("ref") or "")
    if event == "push" and ref.startswith("refs/heads/") and not payload.get("deleted"):
        return Signal(
            "base_moved", sha=payload.get("after"), branch=ref.removeprefix("refs/heads/")
        )
    if event == "status" and payload.get("state") in FAILED_STATES and payload.get("sha"):
        return Signal("ci_failed", sha=str(payload["sha"]))
    if event == "pull_request_review" and action == "submitted":
        review = payload.get("review") or {}
        if str(review.get("state", "")).lower() == "changes_requested" and not is_bot(
            review.get("user")
        ):
            return Signal("changes_requested", review=review)
        return None
    comment = payload.get("comment") or {}
    if event == "issue_comment" and action == "created" and not is_bot(comment.get("user")):
        return Signal("human_comment")
    return None


def scope(repo: str, number: int) -> str:
    """The fix loop's cap counts per pull request."""
    return f"pr:{repo}#{number}"


def ci_key(repo: str, number: int, sha: str) -> str:
    """One CI fix turn per head commit: the agent's fix is a new head, failing again is new."""
    return f"ci:{repo}#{number}:{sha}"


def review_key(repo: str, number: int, review_id: object) -> str:
    return f"review:{repo}#{number}:{review_id}"


def pull_repo(pull_request: Mapping[str, Any]) -> str | None:
    """``owner/name`` of a stored pull request's web URL (``…/owner/name/pull/3``)."""
    parts = urlsplit(str(pull_request.get("url") or "")).path.strip("/").split("/")
    return "/".join(parts[-4:-2]) if len(parts) >= 4 and parts[-2] == "pull" else None
