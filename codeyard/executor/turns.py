"""Driving a run's turns: from ``queued`` through the agent's events to ``review``.

The adapter yields items; this module appends them to the event log, keeps the run row in step
(usage, session, state) and changes status only through ``store.runs.set_status``. A new run's
preparation and its first turn's early start are ``executor.preparation``'s; recording a turn's
end (with its checkpoint, at the agent's exit or while it exits) is ``executor.turn_end``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard.agents import registry, timing
from codeyard.agents.base import (
    RESUME_NOTICE,
    AgentFailure,
    Concluding,
    TurnContext,
    TurnEnd,
)
from codeyard.crypto import SecretBox, SecretsUnavailable
from codeyard.domain.errors import CodeyardError
from codeyard.domain.events import ToolCall, ToolResult, TurnStarted
from codeyard.domain.status import RunStatus
from codeyard.domain.tools import Decision, ToolRequest
from codeyard.executor.approvals import ApprovalGate, TurnStopped, expire_pending_of_run
from codeyard.executor.changes import ChangeTracker
from codeyard.executor.early_checkpoint import EarlyCheckpoint, drop_if_any
from codeyard.executor.handle import RunHandle
from codeyard.executor.live_inbox import LiveInbox
from codeyard.executor.model_switch import LiveModel, SerialPut
from codeyard.executor.preparation import Early, Preparer, fail_run
from codeyard.executor.sink import TurnSink
from codeyard.executor.turn_end import EndRecorder, Turn, ended_before, from_messages, images
from codeyard.executor.turn_options import OptionParts, TurnOptions
from codeyard.executor.watchdog import ModelUnreachable, ModelWatchdog
from codeyard.preview import leases
from codeyard.run_workspace.pool import WorktreePool
from codeyard.store import approvals as approval_door
from codeyard.store import events, runs
from codeyard.store.writer import Tx, Writer

log = logging.getLogger(__name__)
T = TypeVar("T")
P = ParamSpec("P")


def _after(
    recording: asyncio.Future[Any] | None, call: Callable[P, Awaitable[T]]
) -> Callable[P, Awaitable[T]]:
    """``call``, held until the turn's start is recorded: an agent started early may ask for
    a decision (or take a message, switch its model) only in a turn that is stored."""
    if recording is None:
        return call

    async def held(*args: P.args, **kwargs: P.kwargs) -> T:
        await asyncio.shield(recording)
        return await call(*args, **kwargs)

    return held


@contextlib.asynccontextmanager
async def _closing(items: AsyncIterator[T]) -> AsyncIterator[AsyncIterator[T]]:
    """An adapter's items, closed on the way out (an async generator's ``aclose``: the
    adapter's stop sequence runs before the turn's end or failure is recorded, but for an
    end that says only the exit is left, ``TurnEnd.exiting``)."""
    try:
        yield items
    finally:
        close = getattr(items, "aclose", None)
        if close is not None:
            await close()


async def _until_recorded(recording: asyncio.Future[Any] | None) -> None:
    """Let the turn's start be written before the turn ends or fails (a run is never
    ``running`` after its turn's end); its own failure is the turn's."""
    if recording is not None:
        await asyncio.shield(recording)


class TurnDriver:
    """Runs one queued run until it rests (review, failed, paused, cancelled, interrupted)."""

    def __init__(
        self,
        engine: AsyncEngine,
        writer: Writer,
        gate: ApprovalGate,
        worktree_root: Path,
        logs_root: Path,
        bash_timeout: float,
        secrets: SecretBox,
        pool: WorktreePool | None = None,
    ) -> None:
        self._engine = engine
        self.options = TurnOptions(engine, writer, gate, secrets)
        #: Ready worktrees new runs take (``run_workspace.pool``); its owner starts and stops it.
        self.pool = pool
        self._writer = writer
        #: Turns' ends and failures, with their checkpoints (``executor.turn_end``).
        self._ends = EndRecorder(engine, writer)
        self._gate = gate
        self._logs_root = logs_root
        self._bash_timeout = bash_timeout
        #: New runs' preparation and early start (``executor.preparation``).
        self.preparer = Preparer(
            engine, writer, self.options, worktree_root, bash_timeout, pool, self._begin_turn
        )
        #: How long an agent may keep retrying an unreachable model before its turn fails
        #: (``CODEYARD_MODEL_UNREACHABLE_SECONDS``; see ``codeyard.executor.watchdog``).
        self.model_unreachable_seconds = 120.0

    async def drive(self, handle: RunHandle, taken: dict[str, Any] | None = None) -> None:
        """``taken``: the run as the take of its attempt left it (``preparing`` already when
        it has no worktrees); without it the run is read, and must still be ``queued``."""
        run_id = handle.run_id
        try:
            if taken is not None:
                run = taken
            else:
                run = await runs.get(self._engine, run_id)
                if run["status"] != RunStatus.QUEUED:
                    return  # cancelled or paused while it waited for a slot
            leasing: asyncio.Future[leases.Lease] | None = None
            early: Early | None = None
            if not run["worktrees"]:
                # The run's port lease (a writer job) is taken beside preparation's git work,
                # not at the turn's start, where the agent's spawn waited for it (the longest
                # of the turn's option reads: ~12 ms of the ~13 under load, bench/overhead.py).
                leasing = asyncio.ensure_future(leases.ensure(self._writer, run_id))
                leasing.add_done_callback(lambda f: f.cancelled() or f.exception())
                reading: asyncio.Future[OptionParts] | None = None
                if run["turns"] == 0:  # the first turn: its options are read meanwhile too
                    reading = asyncio.ensure_future(self.options.parts(run, leasing))
                    reading.add_done_callback(lambda f: f.cancelled() or f.exception())
                try:
                    prepared = await self.preparer.prepare(run, leasing, reading)
                except BaseException:  # cancelled: nobody will use the options
                    if reading is not None:
                        reading.cancel()
                    raise
                if prepared is None:
                    return
                if reading is not None:
                    early = Early(prepared, reading)
                else:
                    await self._writer.run(lambda tx: Preparer.record_prepared(tx, prepared))
            turn: Turn | None
            if early is not None:
                first = Turn(1, early.run["prompt"], "create")
                turn = await self._run_turn(handle, run_id, first, None, early)
            else:
                turn = await self._writer.run(lambda tx: self._begin_turn(tx, handle))
            while turn is not None:
                turn = await self._run_turn(handle, run_id, turn, leasing)
                leasing = None
        except asyncio.CancelledError:
            await self._land_stopped(handle)
            raise

    async def _begin_turn(self, tx: Tx, handle: RunHandle) -> Turn:
        run_id = handle.run_id
        run = await runs.lock(tx, run_id)
        resumed: str | None = None
        if run["turns"] == 0:
            source, prompt = "create", run["prompt"]
        elif run["agent_state"].get("phase") or not run["pending_messages"]:
            # Resume the unfinished turn with the prompt it started with.
            last = await events.last_of_type(tx.conn, run_id, "turn.started")
            if (last or {}).get("source") == "resume":  # resumed before: the request is older
                starts = await events.read_all(tx.conn, run_id, frozenset({"turn.started"}))
                last = next(
                    (e.data for e in reversed(starts) if e.data["source"] != "resume"), last
                )
            source, prompt = "resume", (last or {}).get("prompt") or run["prompt"]
            notice = run["agent_state"].get(RESUME_NOTICE) or {}
            if notice.get("turn") == run["turns"]:  # its host was lost: say what happened first
                prompt = f"{notice['text']}\n\n{prompt}"
            resumed = (last or {}).get("source") or "create"
            if resumed == "resume":  # resumed more than once: keep the original source
                resumed = (last or {}).get("resumed_source") or "create"
        else:
            source, prompt = from_messages(run["pending_messages"])
        turn = Turn(run["turns"] + 1, prompt, source, resumed)
        if source == "message":
            turn.images = images(run["pending_messages"])
        # The messages become this turn's prompt: taken off the queue, or the turn's end would
        # start them again (an agent_merge ran twice from one click).
        taken = source in ("message", "agent_merge")
        extra: dict[str, Any] = {"pending_messages": []} if taken else {}
        handle.observe(
            await runs.set_status(
                tx, run_id, RunStatus.RUNNING, None, locked=run, turns=turn.number, **extra
            )
        )
        shown = "" if source == "resume" else prompt
        started = TurnStarted(turn=turn.number, prompt=shown, source=source, resumed_source=resumed)
        await tx.emit_one(run_id, started)
        return turn

    async def _run_turn(
        self,
        handle: RunHandle,
        run_id: str,
        turn: Turn,
        leasing: asyncio.Future[leases.Lease] | None = None,
        early: Early | None = None,
    ) -> Turn | None:
        snapshot = handle.run
        if early is not None:  # not stored yet: written below, while the agent starts
            run = {**early.run, "turns": turn.number}
        elif snapshot is not None and snapshot.turns == turn.number:
            run = dict(snapshot.row)  # as the turn's start wrote it
        else:  # a turn started at the previous one's end (queued messages)
            run = dict(handle.observe(await runs.get(self._engine, run_id)).row)
        provider = registry.get(run["provider"])
        tracker = ChangeTracker(run["worktrees"], run["base_commits"])
        tracker.begin()  # its git work overlaps the option loading (or the early start)
        log_path = self._logs_root / f"{run_id}.log"
        sink = TurnSink(self._writer, run_id, run["usage"], log_path, tracker, run["model"])
        recording: asyncio.Future[None] | None = None
        if early is not None:
            recording = asyncio.ensure_future(self.preparer.record_start(handle, run))
            recording.add_done_callback(lambda f: f.cancelled() or f.exception())
        try:
            parts = await (early.reading if early else self.options.parts(run, leasing))
            options, sandbox = self.options.for_turn(run, parts)
        except (CodeyardError, SecretsUnavailable) as exc:
            await tracker.abandon()
            await _until_recorded(recording)
            reason = f"Could not load the run's env sets: {exc}"
            await self._writer.run(lambda tx: fail_run(tx, run_id, reason))
            return None
        ctx = TurnContext(
            run_id=run_id,
            turn=turn.number,
            prompt=turn.prompt,
            source=turn.source,
            resumed_source=turn.resumed_source,
            worktree=Path(next(iter(run["worktrees"].values()))),
            model=run["model"],
            options=options,
            session_id=run["session_id"],
            resume_state=run["agent_state"],
            images=turn.images,
            decide=_after(recording, lambda req: self._decide_call(handle, sink, req)),
            ask_operator=_after(recording, lambda q: self._ask(handle, q)),
            bash_timeout=self._bash_timeout,
            sandbox=sandbox,
            model_unreachable_seconds=self.model_unreachable_seconds,
        )
        if provider.capabilities.mid_turn_input:
            inbox = LiveInbox(self._engine, self._writer, handle)
            ctx.next_messages = _after(recording, inbox.next)
            ctx.messages_taken = _after(recording, inbox.taken)
            if run["pending_messages"]:
                handle.inbox.set()
        put = SerialPut(sink.put)
        if provider.capabilities.mid_turn_model:
            live_model = LiveModel(self._engine, handle, turn.number, run["model"], put)
            ctx.next_model = _after(recording, live_model.next)
            ctx.model_applied = _after(recording, live_model.applied)
        started = asyncio.get_running_loop().time()
        end = TurnEnd("end_turn")
        early_checkpoint: EarlyCheckpoint | None = None
        ending: asyncio.Future[Turn | None] | None = None  # recorded while the agent exits
        timing.for_run(run_id)
        timing.mark("turn")
        try:
            async with (
                sink,
                ModelWatchdog(self.model_unreachable_seconds) as watchdog,
                # Closed here, whatever ends the loop: the adapter's stop sequence runs now.
                _closing(provider.run_turn(ctx)) as agent,
            ):
                async for item in agent:
                    if recording is not None:  # nothing of the turn before its start
                        await asyncio.shield(recording)  # (a cancel lets it finish)
                        recording = None
                        run = dict(handle.run.row) if handle.run else run
                    handle.touch()
                    watchdog.observe(item)
                    if isinstance(item, TurnEnd):
                        timing.mark("turn end")
                        end = item
                        # The agent's last tool call has ended: commit the worktree while
                        # its process exits (the adapter's stop sequence, still to come).
                        early_checkpoint = early_checkpoint or EarlyCheckpoint(
                            self._engine, self._writer, run
                        )
                        if item.exiting:  # only its exit is left: the end is recorded now
                            handle.exiting = asyncio.get_running_loop().create_future()
                            ending = self._ends.meanwhile(run, end, started, sink, early_checkpoint)
                            early_checkpoint = None  # the ending's
                    elif isinstance(item, Concluding):
                        # Maybe the agent's last words: the worktree is as the turn will leave
                        # it unless a tool call follows (which drops this checkpoint, below).
                        early_checkpoint = early_checkpoint or EarlyCheckpoint(
                            self._engine, self._writer, run
                        )
                    elif early_checkpoint is not None and isinstance(item, ToolCall | ToolResult):
                        await early_checkpoint.drop()  # the agent went on after all: later
                        early_checkpoint = None
                        await put(item)
                    else:
                        await put(item)
                timing.mark("agent done")  # its process has exited (the adapter's stop)
            await _until_recorded(recording)  # an agent that ended with no item at all
        except (AgentFailure, ModelUnreachable) as exc:
            if ending is not None:
                return await ended_before(ending, run_id, exc)
            failure = str(exc)
            await drop_if_any(early_checkpoint)
            await _until_recorded(recording)
            await self._ends.settle(run, lambda tx: fail_run(tx, run_id, failure))
            return None
        except Exception as exc:  # an adapter bug must fail the run, not the server
            if recording is not None and recording.done() and recording.exception() is exc:
                raise  # the turn's start could not be written: the run's own failure
            if ending is not None:
                return await ended_before(ending, run_id, exc)
            log.exception("run %s: the agent adapter failed", run_id)
            reason = f"The agent adapter failed: {type(exc).__name__}: {exc}"
            await drop_if_any(early_checkpoint)
            await _until_recorded(recording)
            await self._ends.settle(run, lambda tx: fail_run(tx, run_id, reason))
            return None
        except BaseException:  # cancelled: the run lands where _land_stopped puts it
            await drop_if_any(early_checkpoint)
            for writing in (recording, ending):  # written (or not) before the run lands
                if writing is not None:
                    await asyncio.wait([writing])
            raise
        finally:
            if handle.exiting is not None and not handle.exiting.done():
                handle.exiting.set_result(None)  # the agent is gone
        if ending is not None:
            return await ending
        return await self._ends.record(run, end, started, sink, early_checkpoint)

    async def _decide_call(
        self, handle: RunHandle, sink: TurnSink, request: ToolRequest
    ) -> Decision:
        """Every tool call's one decision path (policies, approvals), and expiry's way out."""
        try:
            await sink.baseline()  # nothing the tool does may reach the baseline
            await sink.flush()  # the tool call itself is stored before its decision
            return await self._gate.decide(handle, request)
        except TurnStopped as exc:
            # Interrupt the turn rather than deny: the agent would only retry or loop.
            handle.stop(RunStatus.INTERRUPTED, str(exc))
            await asyncio.sleep(0)  # the cancellation lands here, and unwinds the adapter
            raise

    async def _ask(self, handle: RunHandle, question: str) -> str:
        """Wait for an operator message; the run shows ``waiting`` (reason ``question``)."""
        run_id = handle.run_id
        handle.answer = asyncio.get_running_loop().create_future()
        try:
            handle.observe(
                await self._writer.run(
                    lambda tx: runs.set_status(tx, run_id, RunStatus.WAITING, "question")
                )
            )
            answer = await handle.answer
        finally:
            handle.answer = None
        handle.observe(
            await self._writer.run(lambda tx: runs.set_status(tx, run_id, RunStatus.RUNNING, None))
        )
        return answer

    async def _land_stopped(self, handle: RunHandle) -> None:
        """The task was cancelled: record where the run lands (paused, cancelled, interrupted).

        Stopped by the server going down (no ``stop_as``), the run's pending approvals stay
        pending for the resumed agent; stopped by an operator or an expiry, they expire.
        """
        by_server = handle.stop_as is None
        status = handle.stop_as or RunStatus.INTERRUPTED
        reason = handle.stop_reason if handle.stop_as else "server stopped"
        run_id = handle.run_id

        async def land(tx: Tx) -> None:
            run = await runs.lock(tx, run_id)
            if run["status"] != status and RunStatus(run["status"]) not in (
                RunStatus.REVIEW,
                RunStatus.FAILED,
                RunStatus.CANCELLED,
                RunStatus.COMPLETED,
            ):
                extra = {"resume_at_start": True} if by_server else {}
                await runs.set_status(tx, run_id, status, reason, locked=run, **extra)
            if by_server:
                await approval_door.release_unfinished(tx, run_id)
                await approval_door.recount(tx, run_id, run)
            else:
                await expire_pending_of_run(tx, run_id, f"the turn stopped ({reason})")

        await asyncio.shield(self._writer.run(land))
