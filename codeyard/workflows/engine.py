"""Executes workflow executions: the DAG of top-level steps, each step at most once.

Every step's progress is an event in the execution's log, written before the step's effect is
relied on; a resumed execution folds that log (:mod:`.state`) and skips every step that
completed, re-attaching to the run a run step had already started. Run steps go through the
run service — the same door as ``POST /api/runs`` — and are observed through their rows
(:mod:`.watch`), never through executor internals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from codeyard.auth.principal import Principal
from codeyard.domain.errors import Conflict
from codeyard.executor.durable_executions import DurableExecutions, StepError
from codeyard.services.context import Services
from codeyard.store import wakeups
from codeyard.store.writer import Tx
from codeyard.workflows import expressions as ex
from codeyard.workflows import graph as graphs
from codeyard.workflows import model, params, steps, store
from codeyard.workflows.state import Folded, attempt_key, fold
from codeyard.workflows.steps import StepFailed
from codeyard.workflows.watch import RunWatcher

log = logging.getLogger(__name__)
RESTART_REASON = (
    "server restarted; resume it with POST /api/workflows/executions/{id}/resume "
    "(completed steps are not run again)"
)


class WorkflowEngine:
    """One per server: the executions in progress, the run watcher, pending approvals."""

    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.watcher = RunWatcher(svc.engine, svc.hub)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._live: dict[str, Execution] = {}
        self._stopping = False
        self._changed = asyncio.Event()
        #: Steps this server runs for a durable executor, per execution (decisions wake them).
        self._steps: dict[str, set[Execution]] = {}
        self._starting: set[asyncio.Task[None]] = set()

    @property
    def durable(self) -> DurableExecutions | None:
        """The executor that schedules executions itself (Temporal), else None (this engine)."""
        executor = self.svc.executor
        return executor if isinstance(executor, DurableExecutions) else None

    def notify(self) -> None:
        """Something was appended to an execution's log: streams read it now."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def changed(self, timeout: float) -> None:
        """Until the next append anywhere, or ``timeout`` (streams then re-check the log)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    async def start(self) -> None:
        """After a crash, executions that were running are marked ``interrupted``: they are
        resumed only by an explicit ``POST …/executions/{id}/resume`` (never guessed)."""
        self.watcher.start()
        if self.durable is not None:
            # Executions are the executor's (Temporal replays them): none is stranded here.
            await self.durable.serve_executions(self)
            return
        async with self.svc.engine.connect() as conn:
            stranded = await store.ids_in(conn, store.ACTIVE)
        for execution_id in stranded:
            await self._mark(execution_id, "interrupted", RESTART_REASON, "interrupted")

    async def stop(self) -> None:
        """Shutdown is not cancel: runs are left to the executor (interrupted, resumable)."""
        self._stopping = True
        for ex_ in [*self._live.values(), *(x for xs in self._steps.values() for x in xs)]:
            ex_.shutting_down = True
        if self.durable is not None:  # its steps go on on another server
            await self.durable.stop_executions()
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.watcher.stop()

    async def _mark(self, execution_id: str, status: str, reason: str, event: str) -> None:
        async def job(tx: Tx) -> None:
            await store.set_status(tx, execution_id, status, reason)
            await store.emit(tx, execution_id, f"workflow.execution.{event}", {"reason": reason})

        await self.svc.writer.run(job)
        self.notify()

    def is_live(self, execution_id: str) -> bool:
        return execution_id in self._tasks

    def launch(self, row: dict[str, Any]) -> None:
        if self._stopping:
            return
        if self.durable is not None:
            deps = graphs.resolve(model.load(row["definition"])).deps
            start = asyncio.create_task(self._start_durable(self.durable, row["id"], deps))
            self._starting.add(start)
            start.add_done_callback(self._starting.discard)
            return
        execution = Execution(self, row)
        self._live[row["id"]] = execution
        task = asyncio.create_task(execution.run())
        self._tasks[row["id"]] = task
        task.add_done_callback(lambda _t: self._forget(row["id"]))

    async def _start_durable(
        self, durable: DurableExecutions, execution_id: str, deps: dict[str, list[str]]
    ) -> None:
        try:
            await durable.start_execution(execution_id, {k: list(v) for k, v in deps.items()})
        except Exception as exc:  # the executor is unreachable: say so on the execution
            log.exception("workflow execution %s could not start", execution_id)
            reason = f"the executor did not take the execution: {exc}"
            await self._mark(execution_id, "failed", reason, "failed")

    async def run_top_step(self, execution_id: str, step_id: str) -> None:
        """``ExecutionSteps``: one top-level step for a durable executor, on this server. The
        log is folded first, so a step another server began is re-attached, not run again."""
        async with self.svc.engine.connect() as conn:
            row = await store.get_execution(conn, execution_id)
        x = Execution(self, row)
        self._steps.setdefault(execution_id, set()).add(x)
        try:
            await x.prepare()
            if x.state.status.get(step_id) == "failed":  # recorded before this server died
                raise StepError(f"step '{step_id}' failed: {x.state.errors.get(step_id)}")
            try:
                await x.run_step(x.graph.steps[step_id], step_id, x.scope)
                if x.background:
                    await asyncio.gather(*x.background)
            except (StepFailed, ex.TemplateError, Conflict) as exc:
                raise StepError(str(exc)) from exc
            except asyncio.CancelledError:
                for task in x.background:
                    task.cancel()
                await asyncio.gather(*x.background, return_exceptions=True)
                raise
        finally:
            mine = self._steps.get(execution_id, set())
            mine.discard(x)
            if not mine:
                self._steps.pop(execution_id, None)

    async def finish_execution(self, execution_id: str, status: str, reason: str | None) -> None:
        """``ExecutionSteps``: the end a durable executor decided, recorded once."""
        async with self.svc.engine.connect() as conn:
            row = await store.get_execution(conn, execution_id)
        if row["status"] in store.FINISHED:
            return  # recorded before a retry of this call
        x = Execution(self, row)
        await x.prepare()
        if status == "completed":
            try:
                outputs = params.render_outputs(x.defn, x.scope)
            except (ex.TemplateError, params.OutputMismatch) as exc:
                await x._finish("failed", str(exc), "failed", {"error": str(exc)})
                return
            await x._finish("completed", None, "completed", {"outputs": outputs}, outputs=outputs)
        elif status == "cancelled":
            why = reason or "cancelled"
            await x._finish("cancelled", why, "cancelled", {"reason": why})
        else:
            why = reason or "failed"
            await x._finish("failed", why, "failed", {"error": why})

    def _forget(self, execution_id: str) -> None:
        self._tasks.pop(execution_id, None)
        self._live.pop(execution_id, None)

    async def cancel(self, execution_id: str, reason: str) -> None:
        """Stop every running step (their runs are cancelled), then mark the execution."""
        task = self._tasks.get(execution_id)
        durable = self.durable
        if (
            task is None
            and durable is not None
            and await durable.cancel_execution(execution_id, reason)
        ):
            return
        if task is not None:
            self._live[execution_id].cancel_reason = reason
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return
        # Not running here (interrupted by a restart): its runs may still wait to be resumed.
        async with self.svc.engine.connect() as conn:
            events = await store.read_events(conn, execution_id)
        folded = fold((e["type"], e["data"]) for e in events)
        for run_id in {d["run_id"] for d in folded.runs.values() if d.get("run_id")}:
            await steps.cancel_run(self.svc, self.watcher, run_id)
        await self._mark(execution_id, "cancelled", reason, "cancelled")

    def wake(self, execution_id: str) -> None:
        """A decision arrived: the execution re-reads its log."""
        self.notify()
        live = self._live.get(execution_id)
        if live is not None:
            live.decided.set()
        for x in self._steps.get(execution_id, ()):
            x.decided.set()

    async def follow(self, execution_id: str, after: int) -> AsyncIterator[dict[str, Any]]:
        """An execution's events after ``after``, then each new one as it is written; ends
        after the execution's last event once it has ended."""
        while True:
            async with self.svc.engine.connect() as conn:
                row = await store.get_execution(conn, execution_id)
                events = await store.read_events(conn, execution_id, after)
            for event in events:
                after = event["seq"]
                yield event
            if row["status"] in (*store.FINISHED, "interrupted") and not events:
                return
            await self.changed(1.0)


class Execution:
    """One execution in progress: its snapshot, folded state and the values steps have made."""

    def __init__(self, eng: WorkflowEngine, row: dict[str, Any]) -> None:
        self.eng = eng
        self.svc = eng.svc
        self.id: str = row["id"]
        self.row = row
        self.defn = model.load(row["definition"])
        self.graph = graphs.resolve(self.defn)
        p = row["principal"]
        self.principal = Principal(
            p["kind"], p["name"], frozenset(p["scopes"]), p.get("user_id"), p.get("role", "admin")
        )
        self.scope: dict[str, Any] = {"inputs": row["inputs"], "steps": {}, "vars": {}}
        self.state = Folded()
        self.decided = asyncio.Event()
        self.shutting_down = False
        self.cancel_reason: str | None = None
        self.background: list[asyncio.Task[Any]] = []
        self.run_ids: set[str] = set()

    # -- the log ---------------------------------------------------------------------------
    async def emit(self, type_: str, data: dict[str, Any]) -> None:
        async def job(tx: Tx) -> None:
            await store.emit(tx, self.id, type_, data)

        await self.svc.writer.run(job)
        self.eng.notify()
        if type_ == store.APPROVAL_REQUESTED:  # committed: the notifications look now
            wakeups.wake(self.svc.engine, wakeups.WORKFLOW_APPROVALS)

    async def prepare(self) -> None:
        """Fold the log and publish what ended into the scope (a step run on its own, for a
        durable executor, reads its predecessors' outputs from here)."""
        await self.refold()
        self.run_ids = {d["run_id"] for d in self.state.runs.values() if d.get("run_id")}
        for key, output in self.state.done.items():
            # ``fan/leg0`` is step ``leg0`` of ``fan``; keys of loop turns, foreach items and
            # retries (``#``, ``[``, ``~``) stay their group's business.
            sid = key.rsplit("/", 1)[-1]
            if sid in self.graph.steps and not any(c in key for c in "#[~"):
                self._publish(self.graph.steps[sid], output, self.scope)

    async def refold(self) -> Folded:
        async with self.svc.engine.connect() as conn:
            events = await store.read_events(conn, self.id)
        self.state = fold((e["type"], e["data"]) for e in events)
        return self.state

    # -- lifecycle -------------------------------------------------------------------------
    async def run(self) -> None:
        await self.refold()
        self.run_ids = {d["run_id"] for d in self.state.runs.values() if d.get("run_id")}
        try:
            await self._run_dag()
            if self.background:
                await asyncio.gather(*self.background)
            outputs = params.render_outputs(self.defn, self.scope)
        except asyncio.CancelledError:
            await self._cancelled()
            raise
        except (StepFailed, ex.TemplateError, Conflict, params.OutputMismatch) as exc:
            await self._finish("failed", str(exc), "failed", {"error": str(exc)})
            return
        except Exception as exc:  # a bug or an infrastructure error: recorded, not swallowed
            log.exception("workflow execution %s failed", self.id)
            await self._finish("failed", f"internal error: {exc}", "failed", {"error": str(exc)})
            return
        await self._finish("completed", None, "completed", {"outputs": outputs}, outputs=outputs)

    async def _cancelled(self) -> None:
        for task in self.background:
            task.cancel()
        await asyncio.gather(*self.background, return_exceptions=True)
        if self.shutting_down:
            reason = "server stopped; resume it with POST …/executions/{id}/resume"
            await asyncio.shield(self._finish("interrupted", reason, "interrupted", {}))
        else:
            reason = self.cancel_reason or "cancelled"
            await asyncio.shield(self._finish("cancelled", reason, "cancelled", {"reason": reason}))

    async def _finish(
        self, status: str, reason: str | None, event: str, data: dict[str, Any], **values: Any
    ) -> None:
        spent = await steps.spent(self)

        async def job(tx: Tx) -> None:
            await store.set_status(tx, self.id, status, reason, spent_usd=spent, **values)
            await store.emit(tx, self.id, f"workflow.execution.{event}", data)

        await self.svc.writer.run(job)
        self.eng.notify()

    async def _run_dag(self) -> None:
        """Top-level steps as their dependencies end; the first failure cancels the rest."""
        pending = dict(self.graph.deps)
        running: dict[asyncio.Task[dict[str, Any]], str] = {}
        finished: set[str] = set()
        try:
            while pending or running:
                ready = [s for s, deps in pending.items() if set(deps) <= finished]
                for sid in sorted(ready):
                    del pending[sid]
                    step = self.graph.steps[sid]
                    running[asyncio.create_task(self.run_step(step, sid, self.scope))] = sid
                if not running:
                    raise StepFailed("the workflow's graph is stuck (a dependency never ended)")
                done, _ = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    sid = running.pop(task)
                    task.result()  # raises the step's failure
                    finished.add(sid)
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    async def run_step(self, step: model.Step, key: str, scope: dict[str, Any]) -> dict[str, Any]:
        """Run ``step`` as ``key`` unless the log says it already ended; record its output."""
        if key in self.state.done:
            output = self.state.done[key]
            self._publish(step, output, scope)
            return output
        skip = self._skip_reason(step, scope)
        if skip is not None:
            output = {"skipped": True, "reason": skip}
            await self.emit("workflow.step.skipped", {"key": key, "reason": skip})
            self.state.done[key] = output
            self._publish(step, output, scope)
            return output
        # Pure steps (no effect outside the log) are recorded once, when they complete; a run
        # step's first record is its run (one write fewer between two runs).
        if self.state.status.get(key) is None and steps.records_start(step):
            await self.emit(
                "workflow.step.started", {"key": key, "step": step.id, "type": step.type}
            )
        output, attempts = await self._attempts(step, key, scope)
        await self.emit(
            "workflow.step.completed", {"key": key, "output": output, "attempts": attempts}
        )
        self.state.done[key] = output
        self._publish(step, output, scope)
        return output

    async def _attempts(
        self, step: model.Step, key: str, scope: dict[str, Any]
    ) -> tuple[dict[str, Any], int]:
        """The step's handler, tried again after a retryable failure when the step says so.
        Attempt ``n`` works under its own key (a new run, new checks); the ``retry`` event is
        written before the wait, so a restart neither repeats a failed attempt nor the wait."""
        attempt = self.state.attempts.get(key, 0)
        while True:
            delay = self.state.not_before.get(key, 0.0) - time.time()
            if attempt and delay > 0:
                await asyncio.sleep(delay)
            try:
                output = await steps.execute(self, step, attempt_key(key, attempt), scope)
                return output, attempt + 1
            except (StepFailed, ex.TemplateError) as exc:
                kind = exc.kind if isinstance(exc, StepFailed) else "template"
                retry = step.retry
                if retry is None or kind not in retry.on or attempt >= retry.max:
                    await self.emit(
                        "workflow.step.failed",
                        {"key": key, "error": str(exc), "kind": kind, "attempts": attempt + 1},
                    )
                    raise StepFailed(f"step '{key}' failed: {exc}", kind) from exc
                wait = retry.delay(attempt)
                attempt += 1
                not_before = time.time() + wait
                await self.emit(
                    "workflow.step.retry",
                    {
                        "key": key,
                        "attempt": attempt,
                        "error": str(exc),
                        "kind": kind,
                        "delay_seconds": wait,
                        "not_before": not_before,
                    },
                )
                self.state.attempts[key] = attempt
                self.state.not_before[key] = not_before

    def _publish(self, step: model.Step, output: dict[str, Any], scope: dict[str, Any]) -> None:
        scope["steps"][step.id] = output
        if isinstance(step, model.ExtractStep) and "value" in output:
            scope["vars"][step.variable] = output["value"]
            self.scope["vars"][step.variable] = output["value"]

    def _skip_reason(self, step: model.Step, scope: dict[str, Any]) -> str | None:
        branch = self.graph.branch_of.get(step.id)
        if branch is not None:
            decided = scope["steps"].get(branch[0]) or {}
            if decided.get("branch") != branch[1]:
                return f"'{branch[0]}' took the {decided.get('branch')} branch"
        if step.when is not None and not ex.evaluate(step.when, scope):
            return f"condition {step.when!r} is false"
        return None
