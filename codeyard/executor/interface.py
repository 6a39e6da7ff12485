"""The one seam between the services and whatever executes runs.

Services hold an :class:`Executor` and nothing else of the executor packages: the local,
in-process executor (``executor.local``) and a distributed one (Temporal, issue 16) implement the
same calls. Everything a run's control needs beyond these calls is durable (the run row, its
events and approvals), so a service never reads an executor's memory to decide what to write.

Control reaches a run as a typed :data:`Signal`:

- :class:`Cancel` / :class:`Pause` stop a live run; it lands in ``cancelled`` / ``paused``.
- :class:`Interrupt` stops a live run so it lands in ``interrupted`` (resumable).
- :class:`Message` hands an operator message to a live agent: as the answer to its question
  (``answer=True``, the run row showed ``waiting``/``question``) or as a message queued mid-turn
  (``answer=False``: the text is already in the run's ``pending_messages``; a live agent that
  takes input mid-turn may take it now).
- :class:`ModelSwitch` tells a live run its model was switched (the new model is already on the
  run row); an agent that can switch mid-turn does so before its next model call.
- :class:`ApprovalAnswer` wakes the agent waiting on an approval that was just answered (the
  answer itself is already stored; this only delivers it).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field


class _Signal(BaseModel):
    # Validators are built with the first signal sent, not at start-up (issue 15).
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class Cancel(_Signal):
    kind: Literal["cancel"] = "cancel"
    reason: str = "cancelled by operator"


class Pause(_Signal):
    kind: Literal["pause"] = "pause"
    reason: str = "paused by operator"


class Interrupt(_Signal):
    kind: Literal["interrupt"] = "interrupt"
    reason: str = "interrupted"


class Message(_Signal):
    kind: Literal["message"] = "message"
    text: str
    #: True: the agent asked a question and this is its answer; False: queued mid-turn.
    answer: bool = False


class ModelSwitch(_Signal):
    kind: Literal["model"] = "model"


class ApprovalAnswer(_Signal):
    kind: Literal["approval_answer"] = "approval_answer"
    approval_id: str
    #: The stored answer: ``{"decision": "approved" | "rejected", "reason", "decided_by", ...}``.
    answer: dict[str, Any]


#: Every control a service sends to a run; ``kind`` tells them apart on a wire (JSON).
Signal = Annotated[
    Cancel | Pause | Interrupt | Message | ApprovalAnswer | ModelSwitch,
    Field(discriminator="kind"),
]
#: The signals that stop a live run, and where each lands.
STOPS: dict[str, str] = {"cancel": "cancelled", "pause": "paused", "interrupt": "interrupted"}


@runtime_checkable
class Executor(Protocol):
    """What services may ask of an executor. Implementations: ``executor.local.LocalExecutor``."""

    async def start(self) -> None:
        """Recover what the last stop left (interrupted runs, leftover processes), then take
        queued runs. Called once by the composition root (``app.py``)."""

    async def shutdown(self) -> None:
        """Stop taking runs; live runs on this process land in ``interrupted`` (resumable)."""

    async def submit(self, run_id: str) -> None:
        """Have a run that is in ``queued`` (already written) executed, FIFO among queued runs.

        Called after the write that queued it has committed; submitting twice is harmless
        (the executor skips a run that is no longer queued)."""

    async def signal(self, run_id: str, signal: Signal) -> bool:
        """Deliver ``signal`` to the run's live attempt. True when it was delivered: for a stop
        (:data:`STOPS`), the run has landed in its status when this returns. False when no
        live attempt could take it (not running here or anywhere): the caller then changes
        the run durably itself (a stop through the status door, a message stays queued)."""

    def waiting_on(self, approval_id: str) -> str | None:
        """The run whose live attempt in this process waits on this approval, if one does
        (what it knows without a read); None otherwise."""

    def deliver_now(self, run_id: str, signal: Signal) -> bool:
        """Deliver ``signal`` without waiting, if the run's live attempt is in this process and
        takes it at once (an approval's answer to the agent waiting on it: a writer job's
        ``after_commit`` wakes it as its answer commits). False otherwise: :meth:`signal`
        delivers it then."""

    def is_live(self, run_id: str) -> bool:
        """True while an attempt of the run is being worked on (informative, not for writes)."""

    async def wait_stopped(self, run_id: str) -> None:
        """Return when no attempt of the run is live any more (tests, shutdown paths)."""
