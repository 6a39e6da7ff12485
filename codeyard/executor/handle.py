"""One object per live run."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from codeyard.domain.status import RunStatus


@dataclass(slots=True)
class RunHandle:
    """Everything the executor holds for a run that is being worked on right now."""

    run_id: str
    task: asyncio.Task[None] | None = None
    #: Set by pause/cancel before the task is cancelled: the status the run lands in.
    stop_as: RunStatus | None = None
    stop_reason: str | None = None
    #: Set while the agent waits for an operator's answer (the script's ``ask`` step).
    answer: asyncio.Future[str] | None = None
    #: Approvals this run's agent is waiting on, by approval id.
    approvals: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    last_activity: float = field(default_factory=time.monotonic)
    #: Set when an operator message is queued mid-turn, for providers that take them live.
    inbox: asyncio.Event = field(default_factory=asyncio.Event)

    def touch(self) -> None:
        self.last_activity = time.monotonic()

    def stop(self, status: RunStatus, reason: str | None) -> bool:
        """Ask the running task to stop and land in ``status``; False if nothing is running."""
        if self.task is None or self.task.done():
            return False
        self.stop_as, self.stop_reason = status, reason
        self.task.cancel()
        return True
