"""Event types and the stored event record (API.md, "Events").

Events are numbered twice: ``id`` is global and increasing (the SSE id), ``seq`` counts within a
run. The JSON of ``data`` is serialized once, when the event is made, and reused by the log, the
hub and every stream.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

EVENT_TYPES: frozenset[str] = frozenset(
    {
        "run.created",
        "run.status",
        "turn.started",
        "turn.completed",
        "agent.session",
        "agent.message",
        "agent.delta",
        "agent.thinking",
        "tool.call",
        "tool.result",
        "file.changed",
        "task.updated",
        "usage",
        "approval.requested",
        "approval.resolved",
        "policy.decision",
        "user.message",
        "checkpoint.created",
        "checkpoint.restored",
        "git.committed",
        "git.merged",
        "run.trusted",
        "workspace.removed",
        "git.rebased",
        "git.branch_renamed",
        "git.pushed",
        "pr.created",
        "error",
        "log",
    }
)


_second: tuple[int, str] = (-1, "")  # the last whole second seen, formatted


def utc_now() -> str:
    """Timestamps are ISO-8601 UTC with millisecond precision and a ``Z``.

    Called for every appended event, so the seconds part is formatted once per second.
    """
    global _second
    now = time.time()
    sec = int(now)
    cached = _second  # one read of an immutable pair: safe from any thread
    if cached[0] != sec:
        cached = _second = (sec, datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    return f"{cached[1]}.{int((now - sec) * 1000):03d}Z"


#: One encoder for every event: ``json.dumps`` with options builds a new one per call, which
#: was a third of the cost of encoding a typical event's data.
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)


def dumps(value: Any) -> str:
    return _ENCODER.encode(value)


@dataclass(slots=True)
class NewEvent:
    """An event before it has been numbered and stored."""

    type: str
    data: dict[str, Any]
    data_json: str = field(default="")

    def __post_init__(self) -> None:
        if not self.data_json:
            self.data_json = dumps(self.data)


@dataclass(slots=True)
class StoredEvent:
    id: int
    run_id: str
    project_id: str
    seq: int
    type: str
    ts: str
    data_json: str
    _json: str | None = None
    _frame: bytes | None = field(default=None, compare=False, repr=False)

    @property
    def data(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.data_json)
        return result

    @property
    def json(self) -> str:
        """The event as the API shows it, built from already-serialized parts."""
        if self._json is None:
            self._json = (
                f'{{"id":{self.id},"run_id":"{self.run_id}","seq":{self.seq},'
                f'"type":"{self.type}","ts":"{self.ts}","data":{self.data_json}}}'
            )
        return self._json

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "run_id": self.run_id,
            "seq": self.seq,
            "type": self.type,
            "ts": self.ts,
            "data": self.data,
        }

    def sse_frame(self) -> str:
        return f"id: {self.id}\nevent: {self.type}\ndata: {self.json}\n\n"

    @property
    def sse_bytes(self) -> bytes:
        """``sse_frame()`` encoded, made once and shared by every stream sending this event."""
        if self._frame is None:
            self._frame = self.sse_frame().encode()
        return self._frame
