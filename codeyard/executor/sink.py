"""Where one turn's adapter items go: the event log (deltas coalesced), the run row, the raw log."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from codeyard.agents.base import AdapterItem, RawOutput, SessionUpdate, UsageTotal
from codeyard.domain.coalesce import DeltaCoalescer
from codeyard.domain.events import (
    AgentSession,
    NewEvent,
    RunModelApplied,
    ToolCall,
    ToolResult,
    Usage,
)
from codeyard.executor.changes import WRITING_KINDS, ChangeTracker
from codeyard.pricing import price_usage
from codeyard.store.writer import Writer

USAGE_KEYS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
LOG_LIMIT_BYTES = 20 * 1024 * 1024


def add_usage(
    total: dict[str, Any], delta: dict[str, Any], *, digits: int | None = 6
) -> dict[str, Any]:
    """The sum of two usages; the cost rounded to ``digits`` (``None``: exact, for sums that
    are compared with an agent's own total)."""
    out: dict[str, Any] = {k: int(total.get(k, 0)) + int(delta.get(k, 0)) for k in USAGE_KEYS}
    cost = float(total.get("cost_usd") or 0.0) + float(delta.get("cost_usd") or 0.0)
    out["cost_usd"] = cost if digits is None else round(cost, digits)
    return out


def usage_remainder(total: Usage, recorded: Mapping[str, Any]) -> Usage | None:
    """The part of an agent's total that the ``usage`` events since its previous total (their
    sum: ``recorded``, priced) do not hold yet; ``None`` when they hold all of it.

    A reported total cost settles the estimate priced from the map while the turn streamed; an
    unreported one leaves the remaining tokens to be priced like any other usage event. A
    negative part is kept: it corrects a live count the agent's own total does not confirm.
    """
    counts = {k: int(getattr(total, k)) - int(recorded.get(k, 0)) for k in USAGE_KEYS}
    cost = None
    if total.cost_usd is not None:
        cost = round(total.cost_usd - float(recorded.get("cost_usd") or 0.0), 8) + 0.0
    if not any(counts.values()) and not cost:
        return None
    return Usage.of(counts, cost_usd=cost, model=total.model)


class TurnSink:
    """Appends a turn's events in order; keeps run usage and session state in the same batches.

    Events are held back until the 50 ms flush tick (or a :class:`SessionUpdate`, or a
    flush: a tool call's decision, the turn's end), so that the events before a
    :class:`SessionUpdate` are committed in the same transaction as it, and a burst of them is
    one append (an append per event was ~40 writer jobs per Claude Code run, issue 15). The
    tick runs only while something is held or buffered: an agent that thinks for minutes
    costs no wake-ups meanwhile.

    Every ``usage`` event gets its dollars here, the one place for all providers: a cost the
    agent reported is kept, a missing one is priced from the model map (the event's model, else
    the one the agent's session reported, else the run's), see ``codeyard.pricing``. A
    :class:`UsageTotal` becomes the ``usage`` event of what the events before it left out.
    """

    def __init__(
        self,
        writer: Writer,
        run_id: str,
        run_usage: dict[str, Any],
        log_path: Path,
        changes: ChangeTracker,
        model: str | None = None,
    ) -> None:
        self._model = model
        self._changes = changes
        self._call_kinds: dict[str, str] = {}
        self._writer = writer
        self._run_id = run_id
        self.run_usage = dict(run_usage)
        self.turn_usage = add_usage({}, {})
        #: What the ``usage`` events since the agent's last :class:`UsageTotal` added up to.
        self._since_total = add_usage({}, {})
        self._log_path = log_path
        #: The raw log, open while the turn writes to it, and its size.
        self._log_fd: int | None = None
        self._log_size = 0
        self._deltas = DeltaCoalescer()
        #: Events held back until the next item, to commit with a following SessionUpdate.
        self._held: list[NewEvent] = []
        self._held_values: dict[str, Any] = {}
        #: A tool's changes are being looked at: the flush tick leaves what is held alone.
        self._noting = False
        self._flusher: asyncio.Task[None] | None = None
        #: Set while something waits for the flush tick (held events or values, buffered text).
        self._armed = asyncio.Event()

    async def __aenter__(self) -> TurnSink:
        # The baseline is not waited for here: the agent's spawn would (issue 15). A tool call
        # waits for it before its decision (:meth:`baseline`), its changes before they are read.
        self._changes.begin()
        self._flusher = asyncio.create_task(self._flush_periodically())
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            if self._flusher is not None:
                self._flusher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._flusher
            await self.flush()
        finally:
            self._close_log()

    async def baseline(self) -> None:
        """Until the change tracker's baseline is taken (a tool call waits for it)."""
        await self._changes.start()

    async def put(self, item: AdapterItem) -> None:
        if isinstance(item, UsageTotal):
            rest = usage_remainder(item.usage, self._since_total)
            if rest is not None:
                await self.put(rest)
            self._since_total = add_usage({}, {})
            return
        if isinstance(item, NewEvent):
            values: dict[str, Any] = {}
            if isinstance(item, AgentSession) and item.model:
                self._model = item.model
            elif isinstance(item, RunModelApplied):
                self._model = item.model  # a mid-turn switch: later usage is the new model's
            elif isinstance(item, Usage):
                item = Usage.model_validate(price_usage(item.data, self._model))
                data = item.data  # dumped once (a dump per use was four per event)
                self.run_usage = add_usage(self.run_usage, data)
                self.turn_usage = add_usage(self.turn_usage, data)
                self._since_total = add_usage(self._since_total, data, digits=None)
                values["usage"] = self.run_usage
            # Held with those before it until the tick (or a SessionUpdate, or a flush): a
            # burst of the agent's events (a message's usage, text and tool call) is one append.
            self._held += self._deltas.push(item, asyncio.get_running_loop().time())
            self._held_values.update(values)
            self._arm()
            if isinstance(item, ToolCall):
                self._call_kinds[item.call_id] = item.kind
            elif isinstance(item, ToolResult):
                kind = self._call_kinds.pop(item.call_id, "other")
                if kind in WRITING_KINDS:
                    await self._note_changes()
        elif isinstance(item, SessionUpdate):
            # The step's last events and the progress that follows them commit together, so a
            # crash can never record a finished step as unfinished (and run it twice).
            # Progress also ends a run's streak of crash-resumes (``auto_resume`` gives up on
            # a run only when it crashes the server again and again without moving on).
            state = {"session_id": item.session_id, "agent_state": item.state, "crash_resumes": 0}
            events = [*self._held, *self._deltas.take()]
            values = {**self._held_values, **state}
            self._held, self._held_values = [], {}
            await self._writer.append(self._run_id, events, values)
        elif isinstance(item, RawOutput):
            self._write_log(item.text)

    async def _note_changes(self) -> None:
        """Hold ``file.changed`` events and fresh diff stats with the tool result.

        The flush tick waits meanwhile: it could commit the result alone while git runs, and a
        host lost right then would leave a result whose changed files nobody recorded
        (failover's notice names them). The result is held all along, so a turn cancelled
        meanwhile still flushes it on its way out."""
        self._noting = True
        try:
            events, stats = await self._changes.after_tool()
        finally:
            self._noting = False
        self._held.extend(events)
        if stats is not None:
            self._held_values["diff_stats"] = stats
        self._arm()

    async def _release(self) -> None:
        """Append what is held back (taken and enqueued without yielding, so order holds)."""
        events, values = self._held, self._held_values
        self._held, self._held_values = [], {}
        if events or values:
            await self._writer.append(self._run_id, events, values)

    async def flush(self) -> None:
        await self._release()
        pending = self._deltas.take()
        if pending:
            await self._writer.append(self._run_id, pending)

    def _arm(self) -> None:
        if self._held or self._held_values or self._deltas.pending:
            self._armed.set()

    async def _flush_periodically(self) -> None:
        """Flush every ``window`` seconds of the loop's clock (ticks on the same grid whenever
        they run) while something waits; idle, it waits to be armed."""
        loop = asyncio.get_running_loop()
        window = self._deltas.window
        while True:
            await self._armed.wait()
            await asyncio.sleep(window - loop.time() % window)
            if not self._noting:
                await self.flush()
            if not (self._held or self._held_values or self._deltas.pending):
                self._armed.clear()

    def _write_log(self, text: str) -> None:
        """Append a line of the agent's raw output; past ``LOG_LIMIT_BYTES`` the rest is left
        out. The file stays open for the turn and each line is one ``write``, so a reader sees
        it at once (opening, sizing and closing the file for every line was most of its cost).
        """
        if self._log_fd is None:
            self._log_fd = os.open(self._log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
            self._log_size = os.fstat(self._log_fd).st_size
        if self._log_size > LOG_LIMIT_BYTES:
            return
        data = (text if text.endswith("\n") else text + "\n").encode()
        view = memoryview(data)
        while view:
            view = view[os.write(self._log_fd, view) :]
        self._log_size += len(data)

    def _close_log(self) -> None:
        fd, self._log_fd = self._log_fd, None
        if fd is not None:
            os.close(fd)
