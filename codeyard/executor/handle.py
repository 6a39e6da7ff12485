"""One object per live run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from codeyard.domain.status import RunStatus

#: A run in these has not started yet (``RunHandle.started``).
_STARTING = frozenset({RunStatus.QUEUED, RunStatus.PREPARING})


@dataclass(frozen=True, slots=True)
class RunSnapshot:
    """The run row as the executor last read or wrote it, typed where the control path looks.

    Replaced whole (never mutated) each time the driver reads the row or a status change
    returns it, so a tool call's decision reads the run once rather than once per question.
    ``row`` is the full row for code that takes one (policy context, budget check).
    """

    id: str
    status: RunStatus
    status_reason: str | None
    turns: int
    trusted: bool
    pending_approvals: int
    budget_usd: float | None
    session_id: str | None
    worktrees: Mapping[str, str]
    row: Mapping[str, Any]

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> RunSnapshot:
        return cls(
            id=str(row["id"]),
            status=RunStatus(row["status"]),
            status_reason=row.get("status_reason"),
            turns=int(row.get("turns") or 0),
            trusted=bool(row.get("trusted")),
            pending_approvals=int(row.get("pending_approvals") or 0),
            budget_usd=row.get("budget_usd"),
            session_id=row.get("session_id"),
            worktrees=dict(row.get("worktrees") or {}),
            row=dict(row),
        )


@dataclass(slots=True)
class RunHandle:
    """Everything the executor holds for a run that is being worked on right now."""

    run_id: str
    task: asyncio.Task[None] | None = None
    #: The run as last read or written by the executor (see :class:`RunSnapshot`).
    run: RunSnapshot | None = None
    #: Set by pause/cancel before the task is cancelled: the status the run lands in.
    stop_as: RunStatus | None = None
    stop_reason: str | None = None
    #: Set while the agent waits for an operator's answer (the script's ``ask`` step).
    answer: asyncio.Future[str] | None = None
    #: Approvals this run's agent is waiting on, by approval id.
    approvals: dict[str, asyncio.Future[dict[str, Any]]] = field(default_factory=dict)
    #: The last answered approval being marked used, behind the agent's answer: the run's next
    #: decision waits for it (``executor.approvals``).
    closing: asyncio.Future[None] | None = None
    last_activity: float = field(default_factory=time.monotonic)
    #: The agent of a turn whose end was recorded while it exits (``TurnEnd.exiting``): done
    #: once its process is gone (what it saves on its way out, its session, is then complete).
    exiting: asyncio.Future[None] | None = None
    #: Set when an operator message is queued mid-turn, for providers that take them live.
    inbox: asyncio.Event = field(default_factory=asyncio.Event)
    #: Set when the run's model is switched mid-turn, for providers that switch live.
    model_nudge: asyncio.Event = field(default_factory=asyncio.Event)
    #: Gives up the start slot the run took as it left the queue (``executor.local``): called
    #: once the run is past its start (see :meth:`observe`); preparation gives it up earlier.
    started: Callable[[], None] | None = None

    def touch(self) -> None:
        self.last_activity = time.monotonic()

    def observe(self, row: Mapping[str, Any]) -> RunSnapshot:
        """Keep ``row`` (just read, or returned by ``set_status``) as the run's snapshot; a run
        seen past ``queued`` and ``preparing`` (its turn started) gives up its start slot."""
        self.run = RunSnapshot.of(row)
        if self.started is not None and self.run.status not in _STARTING:
            self.started()
            self.started = None
        return self.run

    def stop(self, status: RunStatus, reason: str | None) -> bool:
        """Ask the running task to stop and land in ``status``; False if nothing is running."""
        if self.task is None or self.task.done():
            return False
        self.stop_as, self.stop_reason = status, reason
        self.task.cancel()
        return True
