"""Steps that wait: for an event in a run's log, and for a person's decision."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from codeyard.domain.errors import CodeyardError
from codeyard.events.hub import EventFilter, SubscriberDropped, Subscription
from codeyard.services import runs as run_service
from codeyard.store import events as event_store
from codeyard.store import schema
from codeyard.workflows import expressions as ex
from codeyard.workflows import model as m

if TYPE_CHECKING:
    from codeyard.workflows.engine import Execution
from codeyard.workflows.run_steps import continue_run
from codeyard.workflows.step_base import StepFailed, step_output

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
        run_id = str(step_output(scope, step.step, "run_id")["run_id"])
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
    run_id = step_output(scope, step.step, "run_id")["run_id"]
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
            run_id = step_output(scope, target, "run_id")["run_id"]
            known = x.state.rework.get((key, attempt))
            prompt = f"A reviewer sent this work back (attempt {attempt + 1}): {reason}"
            extra = {"target": target, "attempt": attempt}
            output = await continue_run(
                x, key, run_id, prompt, "workflow.step.rework", extra, known
            )
            await x.emit(
                "workflow.step.reworked",
                {"key": key, "target": target, "attempt": attempt, "output": output},
            )
        scope["steps"][target] = output
        attempt += 1
