"""What each step type does. Every handler is re-entrant: called again for a key after a
restart, it picks up what the log recorded (the run it created, the turn it sent, the decision
it waited for) instead of doing it twice."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from codeyard import crashpoints
from codeyard.domain.errors import CodeyardError
from codeyard.domain.status import ACTIVE, RunStatus
from codeyard.events.hub import EventFilter, SubscriberDropped, Subscription
from codeyard.run_workspace.on_host import NotRunOnHost, OnWorktreeHost, ShellJob
from codeyard.services import resolution, review
from codeyard.services import runs as run_service
from codeyard.services import sandbox as sandbox_service
from codeyard.services.context import Services
from codeyard.store import events as event_store
from codeyard.store import schema
from codeyard.workflows import expressions as ex
from codeyard.workflows import judging
from codeyard.workflows import model as m
from codeyard.workflows.state import base_key
from codeyard.workflows.watch import RunWatcher
from codeyard.workspace import shell

if TYPE_CHECKING:
    from codeyard.workflows.engine import Execution

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


def is_pure(step: m.Step) -> bool:
    """No effect outside the execution's log: recorded only once it completed."""
    if isinstance(step, m.ExtractStep):
        return step.output_schema is None
    return isinstance(step, m.IfStep)


def records_start(step: m.Step) -> bool:
    """Whether the engine writes ``workflow.step.started`` before the step's effect. Not for
    pure steps, nor for run steps: their ``workflow.step.run`` comes right after the run is
    created, and a resumed execution finds a run created just before a crash by its label."""
    return not is_pure(step) and not isinstance(step, m.RunStep)


def label(execution_id: str, key: str) -> str:
    """Put on every run a step creates: a resume finds a run created just before a crash."""
    return f"workflow:{execution_id}:{key}"


async def execute(x: Execution, step: m.Step, key: str, scope: dict[str, Any]) -> dict[str, Any]:
    handler = HANDLERS[type(step)]
    output: dict[str, Any] = await handler(x, step, key, scope)
    return output


# -- run ------------------------------------------------------------------------------------


def model_cost(outputs: Any) -> float:
    """What the utility model cost in these step outputs."""
    return float(sum(float(o.get("model_cost_usd") or 0) for o in outputs if isinstance(o, dict)))


async def spent(x: Execution) -> float:
    """Dollars the execution's runs and utility-model calls have cost so far."""
    models = model_cost(x.state.done.values())
    if not x.run_ids:
        return models
    R = schema.runs
    async with x.svc.engine.connect() as conn:
        rows = (await conn.execute(select(R.c.usage).where(R.c.id.in_(x.run_ids)))).all()
    return models + float(sum(float((r.usage or {}).get("cost_usd") or 0) for r in rows))


async def _budget(x: Execution, own: float | None) -> float | None:
    total = x.row.get("budget_usd")
    if total is None:
        return own
    left = float(total) - await spent(x)
    if left <= 0:
        raise StepFailed(f"the execution's budget (${total:.2f}) is spent")
    return min(left, own) if own is not None else left


async def _find_labelled(x: Execution, key: str) -> str | None:
    R = schema.runs
    async with x.svc.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(R.c.id, R.c.labels).where(R.c.created_at >= x.row["created_at"])
            )
        ).all()
    tag = label(x.id, key)
    return next((r.id for r in rows if tag in (r.labels or [])), None)


async def _settle(x: Execution, run_id: str, turns_before: int | None = None) -> dict[str, Any]:
    """Wait for the run to end its turn; an interrupted run (server restart) is resumed."""
    cancelling = False
    try:
        while True:
            row = await x.eng.watcher.until(
                run_id,
                lambda r: (
                    r["status"] == str(S.INTERRUPTED)
                    or (
                        r["status"] in SETTLED
                        and (turns_before is None or int(r["turns"] or 0) > turns_before)
                    )
                    or (r["status"] in (str(S.FAILED), str(S.CANCELLED)))
                ),
            )
            if row["status"] != str(S.INTERRUPTED):
                return row
            await run_service.resume(x.svc, run_id, None)
    except asyncio.CancelledError:
        cancelling = not x.shutting_down
        raise
    finally:
        if cancelling:
            await asyncio.shield(_cancel_run(x, run_id))


async def _cancel_run(x: Execution, run_id: str) -> None:
    await cancel_run(x.svc, x.eng.watcher, run_id)


#: How long cancelling a step waits for its run to stop before the execution's end is recorded.
RUN_STOP_WAIT = 30.0


async def cancel_run(svc: Services, watcher: RunWatcher, run_id: str) -> None:
    """Cancel a step's run if it is still working or waiting to be resumed, and wait until it
    stopped: a run on another host (distributed executor) stops after the cancel is sent, and
    the execution's end is recorded only once its runs are seen stopped."""
    try:
        row = await watcher.read(run_id)
        if S(row["status"]) not in ACTIVE | {S.PAUSED, S.INTERRUPTED}:
            return
        await run_service.cancel(svc, run_id)
        with contextlib.suppress(TimeoutError):  # a host that never answers: the end goes on
            async with asyncio.timeout(RUN_STOP_WAIT):
                await watcher.until(run_id, lambda r: S(r["status"]) not in ACTIVE)
    except (CodeyardError, LookupError):
        pass  # it ended meanwhile: nothing to stop


async def _run_output(x: Execution, row: dict[str, Any]) -> dict[str, Any]:
    async with x.svc.engine.connect() as conn:
        last = await event_store.last_of_type(conn, row["id"], "agent.message")
    worktrees = row["worktrees"] or {}
    return {
        "run_id": row["id"],
        "number": row["number"],
        "status": row["status"],
        "status_reason": row["status_reason"],
        "branch": row["branch"],
        "worktree": next(iter(worktrees.values()), None),
        "diff_stats": row["diff_stats"],
        "cost_usd": float((row["usage"] or {}).get("cost_usd") or 0),
        "turns": row["turns"],
        "message": (last or {}).get("text"),
    }


def _check_good(row: dict[str, Any]) -> None:
    if row["status"] not in GOOD:
        raise StepFailed(
            f"run #{row['number']} ended '{row['status']}': {row['status_reason'] or 'no reason'}",
            "run_failed",
        )


async def _continue_run(
    x: Execution,
    key: str,
    run_id: str,
    prompt: str,
    record: str,
    extra: dict[str, Any],
    known: dict[str, Any] | None,
) -> dict[str, Any]:
    """A new turn in an existing run (``shared`` worktree, or rework after a rejection);
    ``known``: the event that recorded the turn before a restart (the turn is not sent again)."""
    x.run_ids.add(run_id)
    if known is None:
        row = await x.eng.watcher.read(run_id)
        turns = int(row["turns"] or 0)
        before = _cost(row)
        await x.emit(
            record,
            {"key": key, "run_id": run_id, "turns_before": turns, "cost_before": before, **extra},
        )
        await run_service.message(x.svc, run_id, prompt, author="workflow", source="workflow")
    else:
        turns = int(known["turns_before"])
        before = float(known.get("cost_before") or 0)
    row = await _settle(x, run_id, turns)
    _check_good(row)
    output = await _run_output(x, row)
    return {**output, "turn_cost_usd": round(output["cost_usd"] - before, 10)}


def _cost(row: dict[str, Any]) -> float:
    return float((row["usage"] or {}).get("cost_usd") or 0)


async def run_step(
    x: Execution, step: m.RunStep, key: str, scope: dict[str, Any]
) -> dict[str, Any]:
    prompt = ex.render(step.prompt, scope)
    if step.worktree == "shared":
        source = _step_output(scope, step.from_ or "", "run_id")
        known = x.state.runs.get(key)
        first = {"step": step.id, "type": step.type}
        record = "workflow.step.run"
        return await _continue_run(x, key, source["run_id"], prompt, record, first, known)
    recorded = x.state.runs.get(key)
    run_id = recorded["run_id"] if recorded else None
    if run_id is None and (x.state.resumed or x.state.status.get(base_key(key)) is not None):
        run_id = await _find_labelled(x, key)  # created just before a crash, not yet recorded
    if run_id is None:
        body: dict[str, Any] = {
            "prompt": prompt,
            "title": ex.render(step.title, scope) if step.title else None,
            "agent_id": step.agent_id,
            "provider": step.provider,
            "model": step.model,
            "agent_options": ex.render_data(step.agent_options, scope),
            "budget_usd": await _budget(x, step.budget_usd),
            "labels": [label(x.id, key)],
        }
        if step.worktree == "inherit":
            source = _step_output(scope, step.from_ or "", "run_id")
            parent = await run_service.get(x.svc, source["run_id"])
            body |= {
                "project_id": parent["project_id"],
                "repo_ids": parent["repo_ids"],
                "source_ref": parent["branch"],
            }
        else:
            body |= x.row["target"]
        try:
            run = await run_service.create(x.svc, body, x.principal)
        except CodeyardError as exc:
            raise StepFailed(exc.detail) from exc
        run_id = run["id"]
        crashpoints.reached("workflow:run-created")
    x.run_ids.add(run_id)
    if recorded is None:
        first = {"step": step.id, "type": step.type}
        await x.emit(
            "workflow.step.run", {"key": key, "run_id": run_id, "turns_before": 0, **first}
        )
    row = await _settle(x, run_id)
    _check_good(row)
    output = await _run_output(x, row)
    return {**output, "turn_cost_usd": output["cost_usd"]}


def _step_output(scope: dict[str, Any], step_id: str, need: str) -> dict[str, Any]:
    output = scope["steps"].get(step_id)
    if not output or output.get("skipped") or need not in output:
        raise StepFailed(f"step '{step_id}' has no {need} (skipped or not a run step)")
    return dict(output)


# -- shell, wait, extract, if ----------------------------------------------------------------


async def _shell(
    x: Execution, command: str, run_step_id: str, scope: dict[str, Any], timeout: float, key: str
) -> dict[str, Any]:
    source = _step_output(scope, run_step_id, "worktree")
    return await _shell_in(x, command, source, run_step_id, timeout, key)


async def _shell_in(
    x: Execution, command: str, source: dict[str, Any], owner: str, timeout: float, key: str
) -> dict[str, Any]:
    """``command`` in the worktree of the run step ``owner`` made (``source``: its output):
    here with the local executor; on the host that holds the worktree when the executor keeps
    worktrees on worker hosts (``run_workspace.on_host``)."""
    worktree = source.get("worktree")
    if not worktree:
        raise StepFailed(f"the run of step '{owner}' has no worktree (landed or discarded)")
    executor = x.svc.executor
    if isinstance(executor, OnWorktreeHost):
        host = await _host_of(x, str(source.get("run_id") or ""))
        if not host:
            raise StepFailed(f"the run of step '{owner}' was never placed on a worker host")
        job = ShellJob(host, str(worktree), command, timeout, x.id, key)
        try:
            done = await executor.run_shell(job)
        except NotRunOnHost as exc:
            raise StepFailed(f"step '{owner}': {exc}") from exc
        result = shell.ShellResult(done.exit_code, done.output, done.timed_out)
        return {**result.as_output(), "host": done.host}
    if not Path(worktree).is_dir():
        # A worktree is gone once its run is landed or discarded.
        raise StepFailed(
            f"the worktree of step '{owner}' ({worktree}) is not on this server: its run was "
            "landed or discarded; run shell, loop and compare checks before landing"
        )
    sandbox = await sandbox_service.current(x.svc)
    result = await shell.run(command, Path(worktree), sandbox, timeout)
    return result.as_output()


async def _host_of(x: Execution, run_id: str) -> str | None:
    """The worker host that holds the run's worktree (written by the host that placed it)."""
    R = schema.runs
    async with x.svc.engine.connect() as conn:
        host = await conn.scalar(select(R.c.worker_host).where(R.c.id == run_id))
    return str(host) if host else None


async def shell_step(
    x: Execution, step: m.ShellStep, key: str, scope: dict[str, Any]
) -> dict[str, Any]:
    command = ex.render(step.command, scope)
    output = await _shell(x, command, step.in_, scope, step.timeout_seconds, key)
    if output["exit_code"] != 0 and not step.allow_failure:
        why = "timed out" if output["timed_out"] else f"exited {output['exit_code']}"
        kind = "timeout" if output["timed_out"] else "exit_code"
        raise StepFailed(f"`{command}` {why}: {str(output['stdout'])[-500:]}", kind)
    return output


#: Derived event names a wait may use: a check suite's overall result.
SUITE = "check.suite_completed"
DERIVED = {"check.passed": (SUITE, {"passed": True}), "check.failed": (SUITE, {"passed": False})}
#: Seconds between re-reads of the run's log when no event arrived (a safety net: the hub
#: wakes the wait as soon as a matching event is committed).
EVENT_SWEEP_SECONDS = 1.0


async def _last_event_id(x: Execution, run_id: str) -> int:
    E = schema.events
    async with x.svc.engine.connect() as conn:
        found = await conn.scalar(select(func.max(E.c.id)).where(E.c.run_id == run_id))
    return int(found or 0)


async def _next_event(
    x: Execution, run_id: str, type_: str, where: dict[str, Any], after: int
) -> dict[str, Any]:
    """The latest event of ``type_`` after id ``after`` whose data holds ``where`` that is
    already in the run's log, else the first one written later. Read from the database (as any
    client would), so it works on every executor; the hub only says when to read again."""
    caught_up = False
    matched: dict[str, Any] | None = None
    # Subscribed before the first read: an event committed during it still wakes the wait.
    sub = x.svc.hub.subscribe(EventFilter(run_id=run_id, types=frozenset({type_})))
    try:
        while True:
            async with x.svc.engine.connect() as conn:
                found = await event_store.read(
                    conn, run_id=run_id, types=frozenset({type_}), after=after, limit=200
                )
            for event in found:
                after = event.id
                data = event.data or {}
                if all(data.get(k) == v for k, v in where.items()):
                    matched = {"id": event.id, "type": event.type, "ts": event.ts, "data": data}
                    if caught_up:
                        return matched
            if len(found) < 200:
                if matched is not None:
                    return matched
                caught_up = True
                sub = await _woken(x, sub, run_id, type_)
    finally:
        sub.close()


async def _woken(x: Execution, sub: Subscription, run_id: str, type_: str) -> Subscription:
    """Until the run's next event of ``type_`` (or the sweep); a dropped subscriber is
    replaced (the caller re-reads the log, so nothing is lost)."""
    try:
        await asyncio.wait_for(sub.next_batch(), EVENT_SWEEP_SECONDS)
    except TimeoutError:
        pass
    except SubscriberDropped:
        return x.svc.hub.subscribe(EventFilter(run_id=run_id, types=frozenset({type_})))
    return sub


async def _wait_event(
    x: Execution, step: m.WaitStep, key: str, scope: dict[str, Any]
) -> dict[str, Any]:
    if step.step is not None:
        run_id = str(_step_output(scope, step.step, "run_id")["run_id"])
    else:
        run_id = ex.render(step.run or "", scope).strip()
    where = ex.render_data(step.where, scope)
    if step.check is not None:
        type_, where = "check.completed", {**where, "name": step.check}
    else:
        type_, derived = DERIVED.get(str(step.event), (str(step.event), {}))
        where = {**where, **derived}
    cursor = x.state.waiting.get(key)
    if cursor is None:  # recorded, so a restart keeps the same starting point and deadline
        try:
            run = await run_service.get(x.svc, run_id)
        except CodeyardError as exc:
            raise StepFailed(f"there is no run {run_id!r} to watch") from exc
        if not (x.principal.is_admin or x.principal.owns(run["created_by"])):
            raise StepFailed(
                f"run #{run['number']} belongs to another user: a workflow watches only runs "
                "its starter may read"
            )
        after = await _last_event_id(x, run_id) if step.since == "now" else 0
        deadline = time.time() + step.timeout_seconds if step.timeout_seconds else None
        cursor = {"key": key, "run_id": run_id, "after": after, "deadline": deadline}
        await x.emit("workflow.step.waiting", cursor)
        x.state.waiting[key] = cursor
    left = None if cursor["deadline"] is None else max(0.0, cursor["deadline"] - time.time())
    what = f"check {step.check!r}" if step.check else f"event {step.event!r}"
    try:
        event = await asyncio.wait_for(
            _next_event(x, run_id, type_, where, int(cursor["after"])), left
        )
    except TimeoutError as exc:
        raise StepFailed(
            f"no {what} in run {run_id} within {step.timeout_seconds} s", "timeout"
        ) from exc
    output: dict[str, Any] = {"run_id": run_id, "event": event}
    if step.check is not None:
        data = event["data"]
        output |= {
            "check": step.check,
            "ok": bool(data.get("ok")),
            "exit_code": data.get("exit_code"),
        }
        if not data.get("ok"):
            tail = str(data.get("log_tail") or "")[-500:]
            raise StepFailed(f"check {step.check!r} failed in run {run_id}: {tail}", "check_failed")
    return output


async def wait_step(
    x: Execution, step: m.WaitStep, key: str, scope: dict[str, Any]
) -> dict[str, Any]:
    if step.event is not None or step.check is not None:
        return await _wait_event(x, step, key, scope)
    if step.step is None:
        await asyncio.sleep(step.timeout_seconds or 0)
        return {"waited": step.timeout_seconds}
    run_id = _step_output(scope, step.step, "run_id")["run_id"]
    wanted = set(step.status)
    try:
        row = await asyncio.wait_for(
            x.eng.watcher.until(run_id, lambda r: r["status"] in wanted), step.timeout_seconds
        )
    except TimeoutError as exc:
        raise StepFailed(
            f"run of step '{step.step}' did not reach {sorted(wanted)} "
            f"within {step.timeout_seconds} s",
            "timeout",
        ) from exc
    return {"run_id": run_id, "status": row["status"]}


async def extract_step(
    x: Execution, step: m.ExtractStep, key: str, scope: dict[str, Any]
) -> dict[str, Any]:
    text = ex.render(step.source, scope)
    if step.output_schema is None:
        return {"value": ex.extract(text, step.regex, step.jsonpath), "into": step.variable}
    instructions = ex.render(step.instructions, scope) if step.instructions else None
    try:
        value, cost = await judging.extract(
            x.svc, x.principal, step.output_schema, instructions, text
        )
    except judging.ModelFailed as exc:
        raise StepFailed(str(exc), "utility_model" if exc.retryable else "error") from exc
    return {"value": value, "into": step.variable, "model_cost_usd": cost}


async def if_step(x: Execution, step: m.IfStep, key: str, scope: dict[str, Any]) -> dict[str, Any]:
    value = ex.evaluate(step.condition, scope)
    return {"value": value, "branch": "then" if value else "else"}


# -- approval -------------------------------------------------------------------------------

#: Seconds between re-reads of the log while an approval waits for its decision.
DECISION_SWEEP_SECONDS = 2.0


async def _decision(x: Execution, key: str, attempt: int, message: str) -> dict[str, Any]:
    if (key, attempt) not in x.state.requested:
        await x.emit(
            "workflow.approval.requested", {"key": key, "attempt": attempt, "message": message}
        )
        x.state.requested.add((key, attempt))
    while (key, attempt) not in x.state.decisions:
        x.decided.clear()
        await x.refold()
        if (key, attempt) in x.state.decisions:
            break
        # Woken by a decision sent to this server; one sent to another API server (a durable
        # executor's step may run on any) is found by the next re-read.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(x.decided.wait(), DECISION_SWEEP_SECONDS)
    return x.state.decisions[(key, attempt)]


async def approval_step(
    x: Execution, step: m.ApprovalStep, key: str, scope: dict[str, Any]
) -> dict[str, Any]:
    message = ex.render(step.message, scope)
    limit = step.on_reject.max_attempts if step.on_reject else 0
    attempt = 0
    while True:
        decision = await _decision(x, key, attempt, message)
        if decision["approved"]:
            return {"approved": True, "attempts": attempt + 1, "reason": decision.get("reason")}
        reason = decision.get("reason") or "no reason given"
        if step.on_reject is None or attempt >= limit:
            raise StepFailed(f"rejected by {decision.get('by')}: {reason}")
        target = step.on_reject.step
        output = x.state.reworked.get((key, attempt))
        if output is None:
            run_id = _step_output(scope, target, "run_id")["run_id"]
            known = x.state.rework.get((key, attempt))
            prompt = f"A reviewer sent this work back (attempt {attempt + 1}): {reason}"
            extra = {"target": target, "attempt": attempt}
            output = await _continue_run(
                x, key, run_id, prompt, "workflow.step.rework", extra, known
            )
            await x.emit(
                "workflow.step.reworked",
                {"key": key, "target": target, "attempt": attempt, "output": output},
            )
        scope["steps"][target] = output
        attempt += 1


# -- groups: parallel, foreach, loop ---------------------------------------------------------


async def _group(
    x: Execution,
    items: list[tuple[m.Step, str, dict[str, Any]]],
    wait: str,
    limit: int | None,
) -> dict[str, dict[str, Any]]:
    gate = asyncio.Semaphore(limit or len(items) or 1)

    async def one(step: m.Step, key: str, scope: dict[str, Any]) -> dict[str, Any]:
        async with gate:
            return await x.run_step(step, key, scope)

    tasks = {asyncio.create_task(one(*item)): item[1] for item in items}
    if wait == "none":
        x.background.extend(tasks)
        return {}
    results: dict[str, dict[str, Any]] = {}
    try:
        pending = set(tasks)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                results[tasks[task]] = task.result()
            if wait == "any" and results:
                return results
        return results
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def parallel_step(
    x: Execution, step: m.ParallelStep, key: str, scope: dict[str, Any]
) -> dict[str, Any]:
    items = [(child, f"{key}/{child.id}", scope) for child in step.steps]
    results = await _group(x, items, step.wait, step.max_concurrency)
    return {"wait": step.wait, "children": results, "first": next(iter(results), None)}


async def foreach_step(
    x: Execution, step: m.ForeachStep, key: str, scope: dict[str, Any]
) -> dict[str, Any]:
    values = step.items if isinstance(step.items, list) else ex.render_value(step.items, scope)
    if isinstance(values, str):
        try:
            values = json.loads(values)
        except ValueError as exc:
            raise StepFailed(f"items did not resolve to a JSON list: {values[:200]!r}") from exc
    if not isinstance(values, list):
        raise StepFailed(f"items must resolve to a list, not {type(values).__name__}")
    items = []
    for index, item in enumerate(values):
        inner = {**scope, "steps": dict(scope["steps"]), "item": item, "index": index}
        items.append((step.step, f"{key}/{step.step.id}[{index}]", inner))
    results = await _group(x, items, step.wait, step.max_concurrency)
    return {"wait": step.wait, "children": results, "count": len(values)}


def loop_cost(x: Execution, key: str) -> float:
    """What the loop's steps have cost so far: each run turn they made (a ``shared`` turn
    counts only its own cost) and their utility-model calls."""
    prefix = f"{key}#"
    outputs = [o for k, o in x.state.done.items() if k.startswith(prefix)]
    turns = sum(float(o.get("turn_cost_usd") or 0) for o in outputs)
    return round(turns + model_cost(outputs), 10)


async def _check_cap(x: Execution, step: m.LoopStep, key: str, iterations: int) -> None:
    """Before more work: stop once the loop has cost more than ``max_cost_usd``."""
    if step.max_cost_usd is None:
        return
    cost = loop_cost(x, key)
    if cost <= step.max_cost_usd:
        return
    await x.emit(
        "workflow.loop.capped",
        {"key": key, "iterations": iterations, "cost_usd": cost, "max_cost_usd": step.max_cost_usd},
    )
    raise StepFailed(
        f"the loop cost ${cost:.4f}, more than its max_cost_usd ${step.max_cost_usd:.4f}, "
        f"after {iterations} iteration(s); raise the cap or change the steps",
        "cost_cap",
    )


async def loop_step(
    x: Execution, step: m.LoopStep, key: str, scope: dict[str, Any]
) -> dict[str, Any]:
    until = ex.render(step.until, scope)
    for i in range(step.max_iterations):
        for child in step.steps:
            await _check_cap(x, step, key, i)
            await x.run_step(child, f"{key}#{i}/{child.id}", scope)
        check_key = f"{key}#{i}/until"
        check = x.state.done.get(check_key)
        if check is None:
            check = await _shell(x, until, step.in_, scope, 3600, check_key)
            await x.emit("workflow.step.completed", {"key": check_key, "output": check})
            x.state.done[check_key] = check
        if check["exit_code"] == 0:
            return {
                "iterations": i + 1,
                "passed": True,
                "stdout": check["stdout"],
                "cost_usd": loop_cost(x, key),
            }
    raise StepFailed(f"`{until}` still fails after {step.max_iterations} iterations")


# -- land, compare ---------------------------------------------------------------------------


async def _land(x: Execution, run_id: str, action: str, target: str | None) -> dict[str, Any]:
    run = await run_service.get(x.svc, run_id)
    if run["status"] == str(S.COMPLETED):  # landed before a restart: not twice
        return {"run_id": run_id, "action": action, "resolution": run["resolution"]}
    body: dict[str, Any] = {"action": action}
    if target:
        body["target_branch"] = target
    try:
        landed = await resolution.resolve(x.svc, run_id, body, x.principal)
    except CodeyardError as exc:
        raise StepFailed(f"landing run #{run['number']} ({action}): {exc.detail}") from exc
    return {"run_id": run_id, "action": action, "resolution": landed.get("resolution")}


async def land_step(
    x: Execution, step: m.LandStep, key: str, scope: dict[str, Any]
) -> dict[str, Any]:
    run_id = _step_output(scope, step.step, "run_id")["run_id"]
    return await _land(x, run_id, step.action, step.target_branch)


def _candidates(
    x: Execution, step: m.CompareStep, scope: dict[str, Any]
) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for name in step.candidates:
        output = scope["steps"].get(name) or {}
        if "run_id" in output:
            out.append((name, output))
        for child, result in (output.get("children") or {}).items():
            if "run_id" in result:
                out.append((child, result))
    if not out:
        raise StepFailed("no candidate produced a run to compare")
    return out


async def compare_step(
    x: Execution, step: m.CompareStep, key: str, scope: dict[str, Any]
) -> dict[str, Any]:
    scores = []
    for name, output in _candidates(x, step, scope):
        passed = True
        if step.check:
            check_key = f"{key}/check/{name}"
            result = x.state.done.get(check_key)
            if result is None:
                command = ex.render(step.check, scope)
                result = await _shell_in(x, command, output, name, 3600, check_key)
                await x.emit("workflow.step.completed", {"key": check_key, "output": result})
                x.state.done[check_key] = result
            passed = result["exit_code"] == 0
        stats = output.get("diff_stats") or {}
        size = int(stats.get("insertions") or 0) + int(stats.get("deletions") or 0)
        scores.append(
            {
                "candidate": name,
                "run_id": output["run_id"],
                "passed": passed,
                "diff_size": size,
                "cost_usd": output.get("cost_usd") or 0.0,
            }
        )
    ranked = sorted(scores, key=lambda s: (not s["passed"], s["diff_size"], s["cost_usd"]))
    winner = ranked[0]
    if step.check and not winner["passed"]:
        raise StepFailed("no candidate passed the check")
    judgement = None
    if step.judge:
        judgement = await _judgement(x, step, key, scope, ranked)
        winner = next(s for s in ranked if s["candidate"] == judgement["winner"])
    landed = None
    if step.land:
        landed = await _land(x, winner["run_id"], step.land, None)
        for other in ranked:
            if other is not winner:
                await _land(x, other["run_id"], "discard", None)
    return {
        "winner": winner["candidate"],
        "run_id": winner["run_id"],
        "scores": ranked,
        "landed": landed,
        "judgement": judgement,
        "model_cost_usd": (judgement or {}).get("cost_usd", 0.0),
    }


async def _judgement(
    x: Execution, step: m.CompareStep, key: str, scope: dict[str, Any], ranked: list[Any]
) -> dict[str, Any]:
    """The utility model's pick among the candidates that passed, recorded before anything is
    landed: a restart lands the same winner instead of asking again."""
    judge_key = f"{key}/judge"
    recorded = x.state.done.get(judge_key)
    if recorded is not None:
        return recorded
    pool = [dict(s) for s in ranked if s["passed"]]
    if len(pool) == 1:
        verdict = {"winner": pool[0]["candidate"], "reason": "the only candidate that passed"}
        cost = 0.0
    else:
        outputs = {name: out for name, out in _candidates(x, step, scope)}
        for cand in pool:
            cand["message"] = outputs[cand["candidate"]].get("message")
            try:
                cand["diff"] = await review.diff(x.svc, cand["run_id"], "text", None, None)
            except CodeyardError as exc:
                cand["diff"] = f"(diff unavailable: {exc.detail})"
        criteria = ex.render(step.judge or "", scope)
        try:
            verdict, cost = await judging.judge(x.svc, x.principal, criteria, pool)
        except judging.ModelFailed as exc:
            raise StepFailed(str(exc), "utility_model" if exc.retryable else "error") from exc
    result = {**verdict, "cost_usd": cost}  # counted once: in the compare step's output
    await x.emit("workflow.step.completed", {"key": judge_key, "output": result})
    x.state.done[judge_key] = result
    return result


HANDLERS: dict[type, Any] = {
    m.RunStep: run_step,
    m.ShellStep: shell_step,
    m.ApprovalStep: approval_step,
    m.WaitStep: wait_step,
    m.ExtractStep: extract_step,
    m.IfStep: if_step,
    m.ParallelStep: parallel_step,
    m.ForeachStep: foreach_step,
    m.LoopStep: loop_step,
    m.LandStep: land_step,
    m.CompareStep: compare_step,
}
