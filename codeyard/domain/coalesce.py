"""Coalescing streamed text deltas, so a token stream becomes a few events, not thousands.

Consecutive ``agent.delta`` events of one message are merged; anything else flushes the buffer
first, so order is kept. The executor also flushes on a short timer (``window`` seconds).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from codeyard.domain.events import AgentDelta, NewEvent


@dataclass(slots=True)
class DeltaCoalescer:
    window: float = 0.05
    _message_id: str | None = None
    _parts: list[str] = field(default_factory=list)
    _started: float = 0.0

    def push(self, event: NewEvent, now: float) -> list[NewEvent]:
        """Take one event; return the events to store now, in order."""
        if not isinstance(event, AgentDelta):
            return [*self.take(), event]
        message_id = event.message_id
        out = self.take() if message_id != self._message_id else []
        if not self._parts:
            self._message_id, self._started = message_id, now
        self._parts.append(event.text)
        if now - self._started >= self.window:
            out.extend(self.take())
        return out

    @property
    def pending(self) -> bool:
        """Whether text is buffered (``take`` would return an event)."""
        return bool(self._parts)

    def take(self) -> list[NewEvent]:
        """Whatever is buffered, as one delta event (or nothing)."""
        if not self._parts:
            return []
        merged = AgentDelta(message_id=self._message_id, text="".join(self._parts))
        self._parts, self._message_id = [], None
        return [merged]
