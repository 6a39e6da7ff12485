"""The local executor: a FIFO queue of runs and ``max_concurrent_runs`` asyncio workers.

Implements :class:`executor.interface.Executor`. Control (cancel, pause, operator answers)
reaches a live run through its :class:`RunHandle`; runs that are not live are changed directly by
the service through the one status door.

Runs are admitted to their start in line: a worker that took a run off the queue waits for one
of the executor's start slots (:data:`STARTS_PER_PREPARATION` per preparation slot of the host,
``preparation_concurrency``) before the run leaves ``queued``, and the run holds it through its
start (the attempt, ``preparing``, its port lease and options, the git work of its worktrees);
preparation gives it up with its own slot, before setup scripts, a run without one when its
turn starts. A burst of created runs thus waits in ``queued``, in order and at no cost, instead
of a thousand starts at once filling the writer's transactions with their jobs and the event
loop with their steps while the runs already working, and their watchers' streams, wait behind
them (bench/runs_scale.py).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard.agents import process
from codeyard.crypto import SecretBox
from codeyard.domain.status import RunStatus
from codeyard.executor.interface import STOPS, ApprovalAnswer, Message, ModelSwitch, Signal
from codeyard.executor.recovery import (
    Recovered,
    RunProcessRecorder,
    forget_finished,
    recover,
    requeue,
)
from codeyard.run_workspace.admission import PREPARATIONS, Preparations, start_slot
from codeyard.run_workspace.pool import WorktreePool
from codeyard.sandbox import Sandbox
from codeyard.store import fencing, runs
from codeyard.store.writer import Tx, Writer

if TYPE_CHECKING:  # loaded when the workers start taking runs (``_turns``)
    from codeyard.executor.handle import RunHandle
    from codeyard.executor.turn_options import OptionHook
    from codeyard.executor.turns import TurnDriver

log = logging.getLogger(__name__)
S = RunStatus

#: Runs starting at once per preparation slot: the others' attempts, status writes, leases and
#: option reads overlap the git work of the ones preparing (with one slot each, a run's start
#: waited for them and the host started half as many runs a second).
STARTS_PER_PREPARATION = 4


async def take_run(tx: Tx, run_id: str) -> tuple[int, dict[str, Any]] | None:
    """A queued run's new attempt and its row; a run without worktrees is ``preparing`` from
    the same transaction (its drive neither reads it again nor writes that status first: two
    round trips less before its agent starts). None: not queued (or gone) any more."""
    attempt = await runs.begin_attempt(tx, run_id, only_in=S.QUEUED)
    if attempt is None:
        return None
    row = await runs.lock(tx, run_id)
    if not row["worktrees"]:
        row = await runs.set_status(tx, run_id, S.PREPARING, locked=row)
    return attempt, row


class LocalExecutor:
    def __init__(
        self,
        engine: AsyncEngine,
        writer: Writer,
        *,
        default_permission_mode: str,
        max_concurrent_runs: int,
        worktree_root: Path,
        logs_root: Path,
        bash_timeout: float,
        secrets: SecretBox,
    ) -> None:
        self._engine = engine
        self._writer = writer
        self._default_permission_mode = default_permission_mode
        self._worktree_root = worktree_root
        self._logs_root = logs_root
        self._bash_timeout = bash_timeout
        self._secrets = secrets
        self._pool = WorktreePool(worktree_root)
        #: Built by :meth:`_turns` when the workers start taking runs; until then what it
        #: is to be given waits here (see :meth:`_turns`).
        self._driver: TurnDriver | None = None
        self._sandbox: Sandbox | None = None
        self._hooks: list[OptionHook] = []
        self._model_unreachable_seconds: float | None = None
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        #: What the workers wait for before taking their first run (see :meth:`hold_work_until`).
        self._hold: Callable[[], Awaitable[object]] | None = None
        self._max = max_concurrent_runs
        #: Runs taken off the queue by a worker that waits in line for a start slot.
        self._in_line = 0
        #: Sized by :meth:`start`, once the host's preparation bound is configured.
        self._starts = Preparations(1)
        self._workers: list[asyncio.Task[None]] = []
        self.handles: dict[str, RunHandle] = {}
        self._resumers: set[asyncio.Task[None]] = set()
        #: What the last start-up recovered (leftover processes, interrupted and resumed runs).
        self.recovered = Recovered()

    def _turns(self) -> TurnDriver:
        """The turn driver, built once, when the workers start taking runs (issue 15).

        It brings the policy engine, the approval gate and the turn code (``executor.turns``
        and what it imports: 37 modules, ~40 ms of CPU on a busy 2-core host right after
        start-up, ~9 ms once the routers have loaded): a server answers its first requests
        without them, and its workers start only once the background features have (after
        the first answer, :meth:`hold_work_until`), so a run waits for this import only when
        it was queued before then, and only the first time.
        """
        if self._driver is None:
            from codeyard.executor.approvals import ApprovalGate
            from codeyard.executor.turns import TurnDriver

            gate = ApprovalGate(self._engine, self._writer, self._default_permission_mode)
            driver = TurnDriver(
                self._engine,
                self._writer,
                gate,
                self._worktree_root,
                self._logs_root,
                self._bash_timeout,
                self._secrets,
                self._pool,
            )
            if self._sandbox is not None:
                driver.options.contain_with(self._sandbox)
            driver.options.hooks.extend(self._hooks)
            if self._model_unreachable_seconds is not None:
                driver.model_unreachable_seconds = self._model_unreachable_seconds
            self._driver = driver
        return self._driver

    @property
    def pool(self) -> WorktreePool | None:
        """The ready worktrees this executor's new runs take (``run_workspace.pool``)."""
        return self._pool

    def fail_unreachable_models_after(self, seconds: float) -> None:
        """An agent that keeps retrying its model this long fails its turn (``watchdog``)."""
        self._model_unreachable_seconds = seconds
        if self._driver is not None:
            self._driver.model_unreachable_seconds = seconds

    def contain_with(self, sandbox: Sandbox) -> None:
        """Every process of every run runs in ``sandbox`` (see ``TurnOptions.contain_with``)."""
        self._sandbox = sandbox
        if self._driver is not None:
            self._driver.options.contain_with(sandbox)

    def add_option_hook(self, hook: OptionHook) -> None:
        """Let a capability add per-turn agent options (see ``turn_options.OptionHook``)."""
        self._hooks.append(hook)
        if self._driver is not None:
            self._driver.options.hooks.append(hook)

    def hold_work_until(self, ready: Callable[[], Awaitable[object]]) -> None:
        """Take no run before ``ready()`` returns: what follows runs' events (after-turn checks,
        tickets, pull-request pushes) may start after the server does (``codeyard.background``),
        and a turn that ended before they listen would go unseen."""
        self._hold = ready

    async def start(self) -> None:
        """Recover from the last stop (see ``executor.recovery``), then start the workers."""
        recovered = await recover(self._engine, self._writer)
        self.recovered = recovered
        await self._pool.start()  # what a dead server's pool left is removed meanwhile
        async with self._engine.connect() as conn:
            queued = await runs.ids_in(conn, frozenset({S.QUEUED}))
        for run_id in queued:
            self._queue.put_nowait(run_id)
        self._starts = Preparations(STARTS_PER_PREPARATION * PREPARATIONS.limit)
        self._workers = [
            asyncio.create_task(self._work(), name=f"codeyard-executor-{i}")
            for i in range(self._max)
        ]
        for run_id, delay in recovered.resume:
            task = asyncio.create_task(self._auto_resume(run_id, delay), name=f"resume-{run_id}")
            self._resumers.add(task)
            task.add_done_callback(self._resumers.discard)

    async def _auto_resume(self, run_id: str, delay: float) -> None:
        """``auto_resume``: queue an interrupted run again after its back-off."""
        if delay:
            await asyncio.sleep(delay)
        if await self._writer.run(lambda tx: requeue(tx, run_id)):
            self._queue.put_nowait(run_id)

    async def shutdown(self) -> None:
        """Stop the workers; live runs land in ``interrupted`` and resume after the restart."""
        for resumer in list(self._resumers):
            resumer.cancel()
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []
        live = [h.task for h in self.handles.values() if h.task is not None]
        await asyncio.gather(*live, return_exceptions=True)
        await self._pool.close()

    async def submit(self, run_id: str) -> None:
        """Queue a run that is in ``queued`` (FIFO)."""
        self._queue.put_nowait(run_id)

    async def signal(self, run_id: str, signal: Signal) -> bool:
        """See :meth:`Executor.signal`: a stop cancels the run's task and waits for it."""
        if isinstance(signal, Message):
            return self._answer(run_id, signal.text) if signal.answer else self._offer(run_id)
        if isinstance(signal, ApprovalAnswer):
            return self._approval_answered(run_id, signal.approval_id, signal.answer)
        if isinstance(signal, ModelSwitch):
            return self._nudge_model(run_id)
        if not self._stop_run(run_id, RunStatus(STOPS[signal.kind]), signal.reason):
            return False
        await self.wait_stopped(run_id)
        return True

    def waiting_on(self, approval_id: str) -> str | None:
        """See :meth:`Executor.waiting_on`."""
        for run_id, handle in self.handles.items():
            if approval_id in handle.approvals:
                return run_id
        return None

    def deliver_now(self, run_id: str, signal: Signal) -> bool:
        """See :meth:`Executor.deliver_now`: an approval's answer, to an agent waiting here."""
        if isinstance(signal, ApprovalAnswer):
            return self._approval_answered(run_id, signal.approval_id, signal.answer)
        return False

    def is_live(self, run_id: str) -> bool:
        handle = self.handles.get(run_id)
        return handle is not None and handle.task is not None and not handle.task.done()

    @property
    def queue_depth(self) -> int:
        """Runs waiting to start: queued, or taken by a worker and in line for a start slot."""
        return self._queue.qsize() + self._in_line

    @property
    def slots(self) -> int:
        """How many runs this executor works on at once (``max_concurrent_runs``)."""
        return self._max

    def free_slots(self) -> int:
        """Slots not taken by a live run (reported in this worker's heartbeat)."""
        return max(0, self._max - sum(1 for run_id in self.handles if self.is_live(run_id)))

    async def _work(self) -> None:
        if self._hold is not None:
            await self._hold()
        self._turns()
        while True:
            run_id = await self._queue.get()
            # In line for a start slot (see the module's docstring), in the queue's order.
            self._in_line += 1
            try:
                release = await self._starts.take()
            finally:
                self._in_line -= 1
            try:
                await self._take(run_id, release)
            finally:
                release()  # given up once started; here if the run ended (or never began)

    async def _take(self, run_id: str, release: Callable[[], None]) -> None:
        """Work on ``run_id`` in the start slot ``release`` gives up, until the run rests."""
        previous = self.handles.get(run_id)
        if previous is not None and previous.task is not None:
            # Its last turn's end was recorded while its agent exited (``TurnEnd.exiting``),
            # and a message queued it again meanwhile: the next attempt starts in the worktree
            # once that process is gone (not cancelled: ``wait``, not ``gather``).
            await asyncio.wait([previous.task])
        # A new attempt: writes of any earlier one are refused from now on. None: the run
        # was cancelled, paused or deleted while it waited for a slot, or taken already.
        taken = await self._writer.run(functools.partial(take_run, run_id=run_id))
        if taken is None:
            return
        attempt, row = taken
        from codeyard.executor.handle import RunHandle  # loaded by _turns already

        handle = RunHandle(run_id, started=release)
        self.handles[run_id] = handle
        # Every process group the run starts is recorded on it, every write it makes carries
        # its attempt, and its preparation uses its start slot (the task copies the context).
        token = process.recorder.set(RunProcessRecorder(self._writer, run_id))
        fence = fencing.current.set(fencing.Fence(run_id, attempt))
        slot = start_slot.set(release)
        try:
            driving = self._turns().drive(handle, row)
            handle.task = asyncio.create_task(driving, name=f"run-{run_id}")
        finally:
            start_slot.reset(slot)
            fencing.current.reset(fence)
            process.recorder.reset(token)
        try:
            await asyncio.shield(handle.task)
        except asyncio.CancelledError:
            if not handle.task.done():  # the executor is stopping: stop the run with it
                handle.task.cancel()
                await asyncio.gather(handle.task, return_exceptions=True)
                raise
        except fencing.StaleAttempt as exc:  # another attempt took the run: it owns it now
            log.warning("run %s: attempt %s stopped: %s", run_id, attempt, exc)
        except Exception:  # a bug in one run must not stop the worker
            log.exception("run %s crashed", run_id)
        finally:
            if self.handles.get(run_id) is handle:
                del self.handles[run_id]
            release()  # the run has ended: a slot it still holds goes to the next in line
        try:
            await forget_finished(self._engine, self._writer, run_id)
        except Exception:  # bookkeeping only: the next start-up sweep covers it
            log.exception("run %s: could not drop its finished process records", run_id)

    def _stop_run(self, run_id: str, status: RunStatus, reason: str | None) -> bool:
        """Stop a live run so it lands in ``status``; False when it is not live."""
        handle = self.handles.get(run_id)
        return handle is not None and handle.stop(status, reason)

    async def wait_stopped(self, run_id: str) -> None:
        handle = self.handles.get(run_id)
        if handle is not None and handle.task is not None:
            await asyncio.gather(handle.task, return_exceptions=True)

    def _answer(self, run_id: str, text: str) -> bool:
        """Deliver an operator's answer to an agent waiting for one; False if none waits."""
        handle = self.handles.get(run_id)
        if handle is None or handle.answer is None or handle.answer.done():
            return False
        handle.answer.set_result(text)
        return True

    def _offer(self, run_id: str) -> bool:
        """A message was queued mid-turn: a live agent that takes messages now may take it."""
        handle = self.handles.get(run_id)
        if handle is None:
            return False
        handle.inbox.set()
        return True

    def _nudge_model(self, run_id: str) -> bool:
        """The run's model was switched: a live agent that switches mid-turn may do so now."""
        handle = self.handles.get(run_id)
        if handle is None or handle.task is None or handle.task.done():
            return False
        handle.model_nudge.set()
        return True

    def _approval_answered(self, run_id: str, approval_id: str, answer: dict[str, object]) -> bool:
        """Wake the agent waiting on an approval; False when none waits (e.g. after a restart)."""
        handle = self.handles.get(run_id)
        future = handle.approvals.get(approval_id) if handle else None
        if future is None or future.done():
            return False
        future.set_result(dict(answer))
        return True
