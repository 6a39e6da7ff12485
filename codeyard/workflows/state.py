"""Step state folded from an execution's ``workflow.*`` events: what a resume must not redo.

Event types (``data`` members):

- ``workflow.execution.started`` / ``.resumed`` {definition_hash} · ``.completed`` {outputs} ·
  ``.failed`` {error} · ``.cancelled`` {reason} · ``.interrupted`` {reason}
- ``workflow.step.started`` {key, step, type} (every step with an effect but a run step) ·
  ``workflow.step.run`` {key, run_id, turns_before, step, type} (the run a run step created or
  continued; a run step's first record: a resumed execution finds a run created just before a
  crash by its label) · ``workflow.step.completed`` {key,
  output, attempts} · ``workflow.step.failed`` {key, error, kind, attempts} ·
  ``workflow.step.skipped`` {key, reason}
- ``workflow.step.retry`` {key, attempt, error, kind, delay_seconds, not_before}: attempt
  ``attempt - 1`` failed with a retryable error; ``attempt`` starts at ``not_before`` (epoch s)
- ``workflow.step.waiting`` {key, run_id, after, deadline}: a wait step watches the run's log
  after event id ``after`` until ``deadline`` (epoch s, or null)
- ``workflow.loop.capped`` {key, iterations, cost_usd, max_cost_usd}: a loop stopped because
  its runs and model calls cost more than its cap (the step then fails)
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
    "workflow.step.retry",
    "workflow.step.waiting",
    "workflow.loop.capped",
)
EVENT_TYPES = EXECUTION_TYPES + STEP_TYPES
#: Attempt ``n > 0`` of step ``key`` keeps its own state (its run, its checks) under this key.
ATTEMPT_MARK = "~"


def attempt_key(key: str, attempt: int) -> str:
    return key if attempt == 0 else f"{key}{ATTEMPT_MARK}{attempt}"


def base_key(key: str) -> str:
    """The step's key of an attempt's key (step ids cannot hold ``~``)."""
    return key.split(ATTEMPT_MARK, 1)[0]


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
    #: key → the attempt in progress (0 unless a retry was recorded) and when it may start.
    attempts: dict[str, int] = field(default_factory=dict)
    not_before: dict[str, float] = field(default_factory=dict)
    #: key → the wait step's cursor (``run_id``, ``after``, ``deadline``).
    waiting: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: step key → the run of its latest attempt (what the execution view links to).
    latest_run: dict[str, str] = field(default_factory=dict)
    #: The execution was resumed after an interruption (a step may have left an unrecorded run).
    resumed: bool = False

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
            out.latest_run[base_key(key)] = str(data.get("run_id"))
            if out.status.get(base_key(key)) != "completed":
                out.status[base_key(key)] = "running"
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
        elif type_ == "workflow.step.retry":
            out.attempts[key] = int(data["attempt"])
            out.not_before[key] = float(data.get("not_before") or 0)
            out.status[key] = "retrying"
        elif type_ == "workflow.execution.resumed":
            out.resumed = True
        elif type_ == "workflow.step.waiting":
            out.waiting[key] = data
            out.status[base_key(key)] = "waiting"
    return out


def step_view(folded: Folded) -> list[dict[str, Any]]:
    """Each step's key, status, run and output, for the execution view."""
    keys = list(dict.fromkeys([*folded.status, *folded.done]))
    return [
        {
            "key": key,
            "status": folded.status.get(key, "completed"),
            "run_id": (folded.done.get(key) or {}).get("run_id") or folded.latest_run.get(key),
            "output": folded.done.get(key),
            "error": folded.errors.get(key),
            "attempts": folded.attempts.get(key, 0) + 1,
        }
        for key in keys
    ]
