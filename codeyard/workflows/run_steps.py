"""Run steps: a run created (or found again after a restart), followed to its settled state;
and a run sent back to work (approval rework)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from codeyard import crashpoints
from codeyard.domain.errors import CodeyardError
from codeyard.domain.status import ACTIVE
from codeyard.services import runs as run_service
from codeyard.services.context import Services
from codeyard.store import events as event_store
from codeyard.store import schema
from codeyard.workflows import expressions as ex
from codeyard.workflows import model as m
from codeyard.workflows.state import base_key
from codeyard.workflows.watch import RunWatcher

if TYPE_CHECKING:
    from codeyard.workflows.engine import Execution
from codeyard.workflows.step_base import GOOD, SETTLED, S, StepFailed, label, step_output


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


async def find_labelled(x: Execution, key: str) -> str | None:
    R = schema.runs
    async with x.svc.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(R.c.id, R.c.labels).where(R.c.created_at >= x.row["created_at"])
            )
        ).all()
    tag = label(x.id, key)
    return next((r.id for r in rows if tag in (r.labels or [])), None)


async def settle(x: Execution, run_id: str, turns_before: int | None = None) -> dict[str, Any]:
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


async def continue_run(
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
        before = run_cost(row)
        await x.emit(
            record,
            {"key": key, "run_id": run_id, "turns_before": turns, "cost_before": before, **extra},
        )
        await run_service.message(x.svc, run_id, prompt, author="workflow", source="workflow")
    else:
        turns = int(known["turns_before"])
        before = float(known.get("cost_before") or 0)
    row = await settle(x, run_id, turns)
    _check_good(row)
    output = await _run_output(x, row)
    return {**output, "turn_cost_usd": round(output["cost_usd"] - before, 10)}


def run_cost(row: dict[str, Any]) -> float:
    return float((row["usage"] or {}).get("cost_usd") or 0)


async def run_step(
    x: Execution, step: m.RunStep, key: str, scope: dict[str, Any]
) -> dict[str, Any]:
    prompt = ex.render(step.prompt, scope)
    if step.worktree == "shared":
        source = step_output(scope, step.from_ or "", "run_id")
        known = x.state.runs.get(key)
        first = {"step": step.id, "type": step.type}
        record = "workflow.step.run"
        return await continue_run(x, key, source["run_id"], prompt, record, first, known)
    recorded = x.state.runs.get(key)
    run_id = recorded["run_id"] if recorded else None
    if run_id is None and (x.state.resumed or x.state.status.get(base_key(key)) is not None):
        run_id = await find_labelled(x, key)  # created just before a crash, not yet recorded
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
            source = step_output(scope, step.from_ or "", "run_id")
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
    row = await settle(x, run_id)
    _check_good(row)
    output = await _run_output(x, row)
    return {**output, "turn_cost_usd": output["cost_usd"]}
