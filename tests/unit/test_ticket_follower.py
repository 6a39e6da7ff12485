"""The ticket follower reads a run only when its last status change in a batch settles it
(a turn ended, the run landed or stopped short): every other change (queued, preparing,
running, waiting…) moves no ticket and no queue, and reading the run for each of them was a
query per status change of every run (issue 15)."""

from __future__ import annotations

import json
from typing import cast

import pytest

from codeyard.domain.events import StoredEvent
from codeyard.services.context import Services
from codeyard.tickets.follower import _handle

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _status(event_id: int, run_id: str, to: str) -> StoredEvent:
    data = json.dumps({"from": "running", "to": to})
    return StoredEvent(event_id, run_id, "p1", event_id, "run.status", "2026-12-05T00:00:00Z", data)


async def test_only_runs_whose_last_change_settles_them_are_read() -> None:
    handled: list[str] = []

    async def on_status(svc: Services, run_id: str) -> None:
        handled.append(run_id)

    batch = [
        _status(1, "settled_then_resumed", "review"),
        _status(2, "working", "preparing"),
        _status(3, "ended", "running"),
        _status(4, "working", "running"),
        _status(5, "settled_then_resumed", "running"),
        _status(6, "failed", "failed"),
        _status(7, "ended", "review"),
        _status(8, "landed", "completed"),
    ]
    await _handle(cast(Services, None), batch, on_status)
    # In the order of each run's last change; a run that moved on (resumed) is not read now:
    # its next settling change comes in a later batch.
    assert handled == ["failed", "ended", "landed"]
