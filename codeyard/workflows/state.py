"""Step state folded from an execution's ``workflow.*`` events: what a resume must not redo.

Event types (``data`` members):

- ``workflow.execution.started`` / ``.resumed`` {definition_hash} · ``.completed`` {outputs} ·
  ``.failed`` {error} · ``.cancelled`` {reason} · ``.interrupted`` {reason}
- ``workflow.step.started`` {key, step, type} · ``workflow.step.run`` {key, run_id,
  turns_before} (the run a run step created or continued) · ``workflow.step.completed`` {key,
  output} · ``workflow.step.failed`` {key, error} · ``workflow.step.skipped`` {key, reason}
- ``workflow.approval.requested`` {key, attempt, message} · ``workflow.approval.decided`` {key,
  attempt, approved, reason, by}
- ``workflow.step.rework`` {key, target, attempt, run_id, turns_before} ·
  ``workflow.step.reworked`` {key, target, attempt, output}
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

EXECUTION_TYPES = (
    "workflow.execution.started",
    "workflow.execution.resumed",
    "workflow.execution.completed",
    "workflow.execution.failed",
    "workflow.execution.cancelled",
    "workflow.execution.interrupted",
)
STEP_TYPES = (
    "workflow.step.started",
    "workflow.step.run",
    "workflow.step.completed",
    "workflow.step.failed",
    "workflow.step.skipped",
    "workflow.approval.requested",
    "workflow.approval.decided",
    "workflow.step.rework",
    "workflow.step.reworked",
)
EVENT_TYPES = EXECUTION_TYPES + STEP_TYPES


@dataclass(slots=True)
class Folded:
    #: key → output of every step that completed (or was skipped: ``{"skipped": True}``).
    done: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: key → ``pending | running | completed | failed | skipped | waiting``.
    status: dict[str, str] = field(default_factory=dict)
    #: key → the step.run event's data (``run_id``, ``turns_before``).
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: (key, attempt) → the decision.
    decisions: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    requested: set[tuple[str, int]] = field(default_factory=set)
    #: (key, attempt) → the rework event's data, and its output once reworked.
    rework: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    reworked: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def pending_approvals(self) -> list[tuple[str, int]]:
        return sorted(k for k in self.requested if k not in self.decisions)


def fold(events: Iterable[tuple[str, dict[str, Any]]]) -> Folded:
    out = Folded()
    for type_, data in events:
        key = str(data.get("key"))
        if type_ == "workflow.step.started":
            out.status[key] = "running"
        elif type_ == "workflow.step.run":
            out.runs[key] = data
        elif type_ == "workflow.step.completed":
            out.done[key] = data.get("output") or {}
            out.status[key] = "completed"
        elif type_ == "workflow.step.skipped":
            out.done[key] = {"skipped": True, "reason": data.get("reason")}
            out.status[key] = "skipped"
        elif type_ == "workflow.step.failed":
            out.status[key] = "failed"
            out.errors[key] = str(data.get("error"))
        elif type_ == "workflow.approval.requested":
            out.requested.add((key, int(data["attempt"])))
            out.status[key] = "waiting"
        elif type_ == "workflow.approval.decided":
            out.decisions[(key, int(data["attempt"]))] = data
            out.status[key] = "running"
        elif type_ == "workflow.step.rework":
            out.rework[(key, int(data["attempt"]))] = data
        elif type_ == "workflow.step.reworked":
            out.reworked[(key, int(data["attempt"]))] = data.get("output") or {}
    return out


def step_view(folded: Folded) -> list[dict[str, Any]]:
    """Each step's key, status, run and output, for the execution view."""
    keys = list(dict.fromkeys([*folded.status, *folded.done]))
    return [
        {
            "key": key,
            "status": folded.status.get(key, "completed"),
            "run_id": (folded.runs.get(key) or {}).get("run_id")
            or (folded.done.get(key) or {}).get("run_id"),
            "output": folded.done.get(key),
            "error": folded.errors.get(key),
        }
        for key in keys
    ]
