"""The pure parts of notifications and analytics: messages, quiet hours, action tokens,
duration percentiles and analytics periods."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from codeyard.analytics.filters import make_filters
from codeyard.analytics.fold import bucket_of, percentile
from codeyard.domain.errors import BadRequest, Forbidden
from codeyard.notifications import tokens
from codeyard.notifications.channels.base import http_outcome
from codeyard.notifications.channels.webpush import topic_for
from codeyard.notifications.messages import from_event, in_quiet_hours

RUN = {"id": "run_1", "number": 7, "title": "Fix the login page", "created_by": None}


def test_events_become_the_right_kinds() -> None:
    ask = {"approval": {"id": "apr_1", "tool": "Bash", "title": "rm -rf build"}, "gate": True}
    msg = from_event("approval.requested", ask, RUN)
    assert msg is not None
    assert (msg.kind, msg.tag, msg.gate, msg.urgent) == ("approval", "approval-apr_1", True, True)
    assert msg.title == "Run #7 needs approval" and msg.body == "Bash: rm -rf build"
    budget = {"approval": {"id": "apr_2", "kind": "budget", "tool": "budget", "title": "$5"}}
    assert from_event("approval.requested", budget, RUN).kind == "budget"  # type: ignore[union-attr]
    done = from_event("approval.resolved", {"approval_id": "apr_1", "decided_by": "ada"}, RUN)
    assert done is not None and done.tag == "approval-apr_1"  # replaces the alert
    assert from_event("run.status", {"to": "review"}, RUN).kind == "run.finished"  # type: ignore[union-attr]
    assert (
        from_event("run.status", {"to": "waiting", "reason": "question"}, RUN).kind == "run.input"
    )  # type: ignore[union-attr]
    assert from_event("run.status", {"to": "waiting", "reason": "approval"}, RUN) is None
    assert from_event("run.status", {"to": "running"}, RUN) is None


@pytest.mark.parametrize(
    ("now", "start", "end", "quiet"),
    [
        ("23:30", "22:00", "07:00", True),
        ("06:59", "22:00", "07:00", True),
        ("07:00", "22:00", "07:00", False),
        ("12:00", "09:00", "17:00", True),
        ("17:00", "09:00", "17:00", False),
        ("12:00", None, None, False),
        ("12:00", "08:00", "08:00", False),
    ],
)
def test_quiet_hours_wrap_past_midnight(now: str, start: str, end: str, quiet: bool) -> None:
    assert in_quiet_hours(now, start, end) is quiet


def test_action_tokens_are_signed_and_expire() -> None:
    key = b"k" * 32
    token, claims = tokens.issue(key, "apr_1", "usr_1", ttl=60)
    assert tokens.verify(key, token) == claims
    body, _, mac = token.partition(".")
    with pytest.raises(Forbidden, match="not valid"):
        tokens.verify(b"x" * 32, token)  # another server's key
    forged = body[:-2] + ("AA" if body[-2:] != "AA" else "BB")
    with pytest.raises(Forbidden):
        tokens.verify(key, f"{forged}.{mac}")
    with pytest.raises(Forbidden, match="expired"):
        tokens.verify(key, token, now=time.time() + 61)
    with pytest.raises(Forbidden, match="not valid"):  # was a TypeError (500) from schemathesis
        tokens.verify(key, f"{body}.\u00e9{mac[1:]}")


def test_only_429_and_5xx_are_retried_and_404_410_prune() -> None:
    import httpx

    def outcome(code: int, **headers: str) -> tuple[bool, bool, bool, float | None]:
        o = http_outcome(httpx.Response(code, headers=headers))
        return o.ok, o.retry, o.prune, o.retry_after

    assert outcome(201) == (True, False, False, None)
    assert outcome(429, **{"retry-after": "7"}) == (False, True, False, 7.0)
    assert outcome(503) == (False, True, False, None)
    assert outcome(410) == (False, False, True, None)
    assert outcome(404) == (False, False, True, None)
    assert outcome(400) == (False, False, False, None)
    assert outcome(401) == (False, False, False, None)


def test_topic_is_a_valid_rfc8030_topic() -> None:
    topic = topic_for("approval-apr_" + "x" * 100)
    assert len(topic) == 32 and topic == topic_for("approval-apr_" + "x" * 100)
    assert set(topic) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_percentiles_come_from_bucket_bounds() -> None:
    buckets = {bucket_of(5): 90, bucket_of(3000): 9, bucket_of(70_000): 1}
    assert percentile(buckets, 0.5) == 10
    assert percentile(buckets, 0.95) == 5000
    assert percentile(buckets, 0.995) == 180_000
    assert percentile({}, 0.5) is None


def test_periods_are_in_the_viewers_time_zone() -> None:
    now = datetime(2026, 12, 3, 1, 30, tzinfo=UTC)  # still 2 December in New York
    today = make_filters("today", None, "America/New_York", now=now)
    assert today.since_ts == "2026-12-02T05:00:00.000Z"
    week = make_filters("7d", None, "UTC", now=now)
    assert week.since_ts == "2026-11-27T00:00:00.000Z"
    assert make_filters("all", None, "UTC", now=now).since is None
    assert make_filters(None, 1, "UTC", now=now).since_ts == "2026-12-03T00:00:00.000Z"
    with pytest.raises(BadRequest, match="IANA"):
        make_filters("7d", None, "Nowhere/Special")
