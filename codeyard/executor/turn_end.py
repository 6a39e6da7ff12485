"""Recording a turn's end: its checkpoint and ``turn.completed`` (or its failure) together.

Apart from the turn loop (``executor.turns``), which drives the agent's items, because the end
is recorded in two ways the loop only chooses between: after the agent's process has exited,
or, when the agent says only its exit is left (``TurnEnd.exiting``), while it exits. Either way
the checkpoint's row and the end commit in one transaction, and an end that finds operator
messages queued starts the next turn at once; so a turn (``Turn``) and how queued messages
make one's prompt live here too, and the loop's start of a turn uses them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard.agents.base import RESUME_NOTICE, SESSION_BEHIND, TurnEnd
from codeyard.domain.events import ErrorEvent, TurnCompleted, TurnStarted
from codeyard.domain.status import RunStatus
from codeyard.executor.early_checkpoint import EarlyCheckpoint
from codeyard.executor.sink import TurnSink
from codeyard.run_workspace.checkpointing import checkpoint_then
from codeyard.store import runs
from codeyard.store.writer import Tx, Writer
from codeyard.workspace.git import GitError

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(slots=True)
class Turn:
    number: int
    prompt: str
    source: str
    #: For a resumed turn: how the interrupted turn had started ("create" or "message").
    resumed_source: str | None = None
    #: Images attached to the turn's messages (stored files).
    images: tuple[Path, ...] = ()


def from_messages(pending: list[Any]) -> tuple[str, str]:
    """(source, prompt) of a turn made of queued messages (text, or {text, source})."""
    texts = [m["text"] if isinstance(m, dict) else str(m) for m in pending]
    sources = {m.get("source") for m in pending if isinstance(m, dict)}
    return ("agent_merge" if "agent_merge" in sources else "message"), "\n\n".join(texts)


def images(pending: list[Any]) -> tuple[Path, ...]:
    """The images attached to queued messages ({text, source, images: [path…]})."""
    return tuple(Path(p) for m in pending if isinstance(m, dict) for p in m.get("images") or [])


async def ended_before(
    ending: asyncio.Future[Turn | None], run_id: str, exc: Exception
) -> Turn | None:
    """The agent failed on its way out, after it had ended its turn (``TurnEnd.exiting``):
    the turn stays ended, and the failure is only logged."""
    log.warning("run %s: the agent failed after its turn's end: %s", run_id, exc)
    return await ending


async def end_turn(
    tx: Tx, run_id: str, end: TurnEnd, duration_ms: int, turn_usage: dict[str, Any]
) -> Turn | None:
    """Record the turn's end; start the next one at once if messages arrived meanwhile.

    The agent's ``phase`` (its marker of an unfinished turn) is dropped in the same
    transaction: a crash just before this resumes the finished turn (as nothing), one just
    after starts the next turn as what it is."""
    run = await runs.lock(tx, run_id)
    done = ("phase", RESUME_NOTICE, SESSION_BEHIND)  # a failover's marks: told, held now
    if any(k in run["agent_state"] for k in done):
        state = {k: v for k, v in run["agent_state"].items() if k not in done}
        await runs.update_fields(tx, run_id, agent_state=state)
        run["agent_state"] = state
    completed = TurnCompleted(
        turn=run["turns"],
        stop_reason=end.stop_reason,
        result=end.result,
        usage=turn_usage,
        cost_usd=turn_usage["cost_usd"],
        duration_ms=duration_ms,
    )
    await tx.emit_one(run_id, completed)
    if run["pending_messages"]:
        source, prompt = from_messages(run["pending_messages"])
        turn = Turn(run["turns"] + 1, prompt, source, images=images(run["pending_messages"]))
        await runs.update_fields(tx, run_id, pending_messages=[], turns=turn.number)
        await tx.emit_one(run_id, TurnStarted(turn=turn.number, prompt=prompt, source=source))
        return turn
    await runs.set_status(
        tx, run_id, RunStatus.REVIEW, end.stop_reason, locked=run, crash_resumes=0
    )
    return None


def _since(started: float) -> int:
    """Milliseconds on the loop's clock since ``started`` (the turn's duration)."""
    return int((asyncio.get_running_loop().time() - started) * 1000)


class EndRecorder:
    """Records turns' ends and failures for one turn driver, with their checkpoints."""

    def __init__(self, engine: AsyncEngine, writer: Writer) -> None:
        self._engine = engine
        self._writer = writer

    async def record(
        self,
        run: dict[str, Any],
        end: TurnEnd,
        started: float,
        sink: TurnSink,
        checkpoint: EarlyCheckpoint | None,
    ) -> Turn | None:
        """The turn's end (or the next turn's start), once the adapter has finished: the
        sink's turn usage is read as the transaction runs, after all it held is written."""
        return await self._record(run, end, _since(started), sink, checkpoint)

    def meanwhile(
        self,
        run: dict[str, Any],
        end: TurnEnd,
        started: float,
        sink: TurnSink,
        checkpoint: EarlyCheckpoint,
    ) -> asyncio.Future[Turn | None]:
        """The turn's end (or the next turn's start), recorded while the agent's process exits
        (``TurnEnd.exiting``: Claude Code takes ~40 ms to exit after its result): what the sink
        holds first, then ``checkpoint`` with the end. The caller returns it only once the
        process is gone, so a next turn's agent never starts beside this one; the run's task
        lives until then (the executor's next attempt of the run waits for it)."""

        async def record() -> Turn | None:
            duration_ms = _since(started)
            await sink.flush()
            return await self._record(run, end, duration_ms, sink, checkpoint)

        ending = asyncio.ensure_future(record())
        ending.add_done_callback(lambda f: f.cancelled() or f.exception())
        return ending

    async def _record(
        self,
        run: dict[str, Any],
        end: TurnEnd,
        duration_ms: int,
        sink: TurnSink,
        checkpoint: EarlyCheckpoint | None,
    ) -> Turn | None:
        run_id = run["id"]
        return await self.settle(
            run, lambda tx: end_turn(tx, run_id, end, duration_ms, sink.turn_usage), checkpoint
        )

    async def settle(
        self,
        run: dict[str, Any],
        end: Callable[[Tx], Awaitable[T]],
        early: EarlyCheckpoint | None = None,
    ) -> T:
        """At a turn's end: an automatic checkpoint, whose diff stats become the run's (one
        snapshot of the worktree for both: a separate one cost four more git processes), and
        ``end`` (the turn's end or failure) in the same transaction as its row: a crash
        between the two can neither leave a turn ended without its checkpoint nor make a
        resumed turn take a second one (``checkpoint_then``). ``early``: the checkpoint whose
        git work began at the agent's ``TurnEnd``; only its row and ``end`` remain."""
        try:
            if early is not None:
                _, ended = await early.record(end)
            else:
                _, ended = await checkpoint_then(
                    self._engine, self._writer, run, "turn", None, end, run_stats=True
                )
            return ended
        except GitError as exc:  # informative only: a git hiccup must not fail the turn
            log.warning("turn-end checkpoint of run %s failed: %s", run["id"], exc)
            error = ErrorEvent(message="Could not take the turn-end checkpoint.", detail=str(exc))
            await self._writer.append(run["id"], [error])
        return await self._writer.run(end)
