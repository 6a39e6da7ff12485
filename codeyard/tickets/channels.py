"""The seed's event channels (``ticket:{id}``, ``project:{id}``) and event names, read from
Codeyard's own event log: every name below is a run event renamed, so replay after
``Last-Event-ID`` works as on the other streams. Ticket edits and comments are rows, not events,
so ``comment:created`` and ticket field edits are not on these channels (a ticket's status
follows its run, whose ``run.status`` is sent as ``ticket:updated``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from codeyard.domain.events import StoredEvent

#: Seed name for each Codeyard event type (types not listed are sent under their own name).
SEED_NAMES: dict[str, str] = {
    "turn.started": "agent:started",
    "turn.completed": "agent:stopped",
    "agent.delta": "agent:text_delta",
    "agent.message": "agent:message",
    "agent.thinking": "agent:thinking_delta",
    "tool.call": "agent:tool_call",
    "tool.result": "agent:tool_result",
    "error": "agent:error",
    "user.message": "agent:user_message",
    "pr.created": "pr:created",
    "run.status": "ticket:updated",
    "review.submitted": "review:submitted",
    "queue.advanced": "queue:advanced",
    "queue.paused": "queue:paused",
}


def seed_name(event_type: str) -> str:
    return SEED_NAMES.get(event_type, event_type)


@dataclass
class Channels:
    """Which events a subscriber asked for: whole projects, the runs of some tickets, or all.

    ``tickets`` maps a ticket's project and number to its id; runs started for the ticket later
    are recognised by their ``run.created`` event (labelled ``ticket:{number}``).
    """

    everything: bool = False
    project_ids: set[str] = field(default_factory=set)
    tickets: dict[tuple[str, int], str] = field(default_factory=dict)
    run_tickets: dict[str, str] = field(default_factory=dict)

    def _learn(self, event: StoredEvent) -> None:
        if event.type != "run.created" or not self.tickets:
            return
        run = event.data.get("run") or {}
        for label in run.get("labels") or []:
            if isinstance(label, str) and label.startswith("ticket:") and label[7:].isdigit():
                ticket_id = self.tickets.get((event.project_id, int(label[7:])))
                if ticket_id is not None:
                    self.run_tickets[event.run_id] = ticket_id

    def wants(self, event: StoredEvent) -> bool:
        self._learn(event)
        return (
            self.everything
            or event.project_id in self.project_ids
            or event.run_id in self.run_tickets
        )

    def frame(self, event: StoredEvent) -> dict[str, Any]:
        """An SSE message: the seed's name as ``event``, the log's id, the Codeyard event."""
        body = {
            "type": seed_name(event.type),
            "codeyard_type": event.type,
            "run_id": event.run_id,
            "project_id": event.project_id,
            "ticket_id": self.run_tickets.get(event.run_id),
            "ts": event.ts,
            "data": event.data,
        }
        return {"id": str(event.id), "event": body["type"], "data": json.dumps(body)}
