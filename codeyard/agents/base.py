"""The adapter protocol every provider implements, and the items adapters yield.

An adapter translates; it never writes to the database. It yields :class:`NewEvent` (already in
the API's event vocabulary) plus a few control items the executor acts on. Permission requests and
questions to the operator are awaited callbacks on the :class:`TurnContext`, so every provider's
tool calls pass the same decision function.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from codeyard.domain.events import ErrorEvent, NewEvent, Usage
from codeyard.domain.tools import Decision, ToolRequest
from codeyard.sandbox import Sandbox

#: Set in a run's ``agent_state`` when its session files were restored on another host from a
#: checkpoint older than the interrupted turn (issue 16): the resumed session does not hold that
#: turn's request, so an adapter resuming it sends the turn's prompt (which the executor made
#: the failover notice followed by that request) instead of "continue".
SESSION_BEHIND = "session_behind"
#: Set in a run's ``agent_state`` by the host that takes a run over after its host was lost
#: mid-turn: what happened and what the cut-off attempt had done (``temporal.failover``). The
#: executor puts it before the resumed turn's request; both keys go at that turn's end.
RESUME_NOTICE = "resume_notice"


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a provider can do, as data, so the API can say so up front."""

    approvals: bool
    resume: bool
    interrupt: bool
    mid_turn_input: bool
    usage: bool
    cost: bool
    #: Operator messages may carry images (``POST /api/runs/{id}/messages`` ``images``).
    images: bool = False
    #: ``PUT /api/runs/{id}/model`` reaches the running turn (its next model call), not only
    #: the next turn.
    mid_turn_model: bool = False

    def as_dict(self) -> dict[str, bool]:
        return {
            "images": self.images,
            "approvals": self.approvals,
            "resume": self.resume,
            "interrupt": self.interrupt,
            "mid_turn_input": self.mid_turn_input,
            "usage": self.usage,
            "cost": self.cost,
            "mid_turn_model": self.mid_turn_model,
        }


@dataclass(frozen=True, slots=True)
class SessionUpdate:
    """The agent's resumable state changed: persist it with the events that precede it."""

    session_id: str | None
    state: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RawOutput:
    """Raw agent output for ``GET /runs/{id}/logs`` (kept outside the event log)."""

    text: str


@dataclass(frozen=True, slots=True)
class UsageTotal:
    """What the agent says it used since its previous total (or the turn's start).

    For agents that report usage twice: partly as each model call streams (so the run's figures
    grow during a turn) and exactly at the turn's end. The executor records only what its
    ``usage`` events since the previous total have not, so the run's total is the agent's own
    and nothing is counted twice.
    """

    usage: Usage


@dataclass(frozen=True, slots=True)
class TurnEnd:
    """The agent's turn has ended (``stop_reason``, its final ``result`` text).

    ``exiting``: nothing of the turn follows, only the agent's stop and its process's exit
    (begun at the latest when the executor asks for the next item; everything the turn wrote
    in the worktree is there already). The executor then records the turn's end while the
    process exits; the run's task, and a next turn in its worktree, still wait for the exit.
    Without it the turn ends when the adapter does."""

    stop_reason: str
    result: str | None = None
    exiting: bool = False


@dataclass(frozen=True, slots=True)
class Concluding:
    """The agent has begun what may be its turn's last words: a message, with no tool call in
    flight, that it does not mark as mere commentary. Unless a tool call follows after all,
    the worktree is as the turn will leave it, so the executor begins the turn-end
    checkpoint's git work now instead of at :class:`TurnEnd`, and a tool call after it drops
    that work (``executor.early_checkpoint``). A hint: an adapter that never yields it only
    ends its turns later (Codex: the checkpoint's ~25 ms came after ``turn/completed``, which
    follows the final message's start by ~20 ms; bench/overhead.py)."""


class AgentFailure(Exception):
    """The agent failed the turn; ``str(exc)`` becomes the run's ``status_reason``."""


class ModelRetrying(ErrorEvent):
    """An ``error`` event saying the CLI cannot reach its model and retries by itself (stored
    like any ``error``). The executor fails the turn when these go on, with no progress, for
    ``model_unreachable_seconds`` (``codeyard.executor.watchdog``)."""


AdapterItem = NewEvent | SessionUpdate | RawOutput | TurnEnd | UsageTotal | Concluding


@dataclass(slots=True)
class TurnContext:
    """Everything one turn of one run needs, handed to the adapter by the executor."""

    run_id: str
    turn: int
    prompt: str
    source: str
    worktree: Path
    model: str | None
    options: dict[str, Any]
    session_id: str | None
    resume_state: dict[str, Any]
    #: For ``source == "resume"``: how the interrupted turn had started.
    resumed_source: str | None
    decide: Callable[[ToolRequest], Awaitable[Decision]]
    ask_operator: Callable[[str], Awaitable[str]]
    bash_timeout: float = 600.0
    #: For providers with ``mid_turn_input``: waits for operator messages sent during the turn
    #: that were not offered yet. They stay queued on the run until ``messages_taken``.
    next_messages: Callable[[], Awaitable[list[str]]] | None = None
    #: The agent took in the first ``count`` offered messages: they leave the run's queue
    #: (messages never taken start the next turn instead, so none is lost or sent twice).
    messages_taken: Callable[[int], Awaitable[None]] | None = None
    #: Where every process of the turn runs (``codeyard.sandbox.contain``); on by default.
    sandbox: Sandbox = field(default_factory=Sandbox)
    #: Images the operator attached to the turn's messages (files Codeyard stored), for
    #: providers with the ``images`` capability.
    images: tuple[Path, ...] = ()
    #: Seconds an agent may stay silent inside a model call (no tool running, no approval
    #: pending) before the turn fails as "model unreachable" (``model_unreachable_seconds``):
    #: for agents that retry a dead model API without saying so on their protocol (ACP).
    model_unreachable_seconds: float = 120.0
    #: For providers with ``mid_turn_model``: waits until the run's model is switched during
    #: the turn and returns the new one (None: the provider's default).
    next_model: Callable[[], Awaitable[str | None]] | None = None
    #: The agent now uses ``model`` (records ``run.model_applied``; later usage is priced so).
    model_applied: Callable[[str | None], Awaitable[None]] | None = None


class Provider(Protocol):
    name: str
    capabilities: Capabilities

    def version(self) -> str | None: ...

    def problem(self) -> str | None:
        """Why this provider cannot run here, with the fix; ``None`` when it can."""
        ...

    def validate_options(self, options: dict[str, Any]) -> None:
        """Raise ``ValidationFailed`` for options this provider cannot run with."""
        ...

    def run_turn(self, ctx: TurnContext) -> AsyncIterator[AdapterItem]:
        """Run one turn; cancellation of the iterating task stops the agent."""
        ...
