"""The notifier reads a run's row only for events that call for a notification: every run
goes through several status changes that notify no one (queued, preparing, running, waiting
for an approval…), and each cost a query of the run (issue 15)."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from codeyard.notifications import store
from codeyard.notifications.derive import Notifier
from codeyard.store.consumers import LoggedEvent

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Queried(Exception):
    """The notifier sent a statement."""


class NoQueries:
    """A connection that must not be used."""

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        raise Queried


def _event(event_id: int, type_: str, data: dict[str, Any]) -> LoggedEvent:
    return LoggedEvent(event_id, "run_1", "p1", type_, "2026-12-05T00:00:00.000Z", json.dumps(data))


def _notifier() -> Notifier:
    notifier = Notifier.__new__(Notifier)  # prepare needs no writer or hub
    notifier.engine = cast(Any, None)
    notifier.grace_seconds = 0.0
    return notifier


async def test_status_changes_that_notify_no_one_read_nothing() -> None:
    quiet = [
        _event(1, "run.status", {"from": "queued", "to": "preparing"}),
        _event(2, "run.status", {"from": "preparing", "to": "running"}),
        _event(3, "run.status", {"from": "running", "to": "waiting", "reason": "approval"}),
        _event(4, "run.status", {"from": "waiting", "to": "running"}),
    ]
    conn = cast(AsyncConnection, NoQueries())
    assert await _notifier().prepare(conn, quiet) == []


@pytest.mark.parametrize(
    ("type_", "data"),
    [
        ("run.status", {"from": "running", "to": "review"}),
        ("run.status", {"from": "running", "to": "failed", "reason": "boom"}),
        ("approval.requested", {"approval": {"id": "apr_1", "tool": "Write", "title": "x"}}),
        ("approval.resolved", {"approval_id": "apr_1", "decision": "approved"}),
    ],
)
async def test_events_that_notify_read_the_run(
    type_: str, data: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def some_targets(_engine: object) -> bool:
        return True  # with none anywhere nothing is read (tests/integration/test_notify_reads)

    monkeypatch.setattr(store, "any_targets", some_targets)
    conn = cast(AsyncConnection, NoQueries())
    with pytest.raises(Queried):
        await _notifier().prepare(conn, [_event(1, type_, data)])
