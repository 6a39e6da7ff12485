"""What every workflow step handler shares: its failure, the run states it waits for, the
label on the runs it creates, another step's output."""

from __future__ import annotations

from typing import Any

from codeyard.domain.status import RunStatus

S = RunStatus
#: A run has ended its turn (or for good): nothing more happens without someone.
SETTLED = frozenset(str(s) for s in (S.REVIEW, S.COMPLETED, S.FAILED, S.CANCELLED, S.PAUSED))
GOOD = frozenset({str(S.REVIEW), str(S.COMPLETED)})


class StepFailed(Exception):
    """A step could not complete; the message is the step's error, ``kind`` what failed
    (one of :data:`model.RETRYABLE` when trying again may help, else ``error``)."""

    def __init__(self, message: str, kind: str = "error") -> None:
        super().__init__(message)
        self.kind = kind


def label(execution_id: str, key: str) -> str:
    """Put on every run a step creates: a resume finds a run created just before a crash."""
    return f"workflow:{execution_id}:{key}"


def step_output(scope: dict[str, Any], step_id: str, need: str) -> dict[str, Any]:
    """What step ``step_id`` produced, which must include ``need`` (a run id, a worktree)."""
    output = scope["steps"].get(step_id)
    if not output or output.get("skipped") or need not in output:
        raise StepFailed(f"step '{step_id}' has no {need} (skipped or not a run step)")
    return dict(output)
