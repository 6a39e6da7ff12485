"""What a delivery does to a run driven on this host: an operator's answer, an approval's
answer, a stop, a queued message or a model switch, handed to the run's live handle."""

from __future__ import annotations

import asyncio

from codeyard.domain.status import RunStatus
from codeyard.executor.handle import RunHandle
from codeyard.temporal.contracts import Delivery

S = RunStatus
_STOPS = {"cancelled": S.CANCELLED, "paused": S.PAUSED, "interrupted": S.INTERRUPTED}


async def deliver(handle: RunHandle | None, item: Delivery) -> bool:
    """Hand ``item`` to the run's live handle; False when the run is not live here or the
    handle no longer waits for it (the caller then changes the run itself)."""
    if handle is None or handle.task is None or handle.task.done():
        # Not live here (the drive ended, or has not taken its attempt yet): everything a
        # delivery carries is durable already, so the caller changes the run itself.
        return False
    if item.kind == "stop":
        if not handle.stop(_STOPS[item.status], item.reason or None):
            return False
        await asyncio.gather(handle.task, return_exceptions=True)
        return True
    if item.kind == "approval":
        future = handle.approvals.get(item.approval_id)
        if future is None or future.done():
            return False
        future.set_result(dict(item.answer))
        return True
    if item.kind == "answer":
        if handle.answer is None or handle.answer.done():
            return False
        handle.answer.set_result(item.text)
        return True
    if item.kind == "offer":  # queued mid-turn: a live agent may take it now
        handle.inbox.set()
        return True
    if item.kind == "model":  # the run's model was switched: a live agent may switch now
        handle.model_nudge.set()
        return True
    raise ValueError(f"unknown delivery kind {item.kind!r}")
