"""What each step type does. Every handler is re-entrant: called again for a key after a
restart, it picks up what the log recorded (the run it created, the turn it sent, the decision
it waited for) instead of doing it twice. Here: the dispatch, extract/if and the groups; run
steps, waiting steps and worktree steps have their own modules."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from codeyard.workflows import expressions as ex
from codeyard.workflows import judging, run_steps, wait_steps, worktree_steps
from codeyard.workflows import model as m
from codeyard.workflows.run_steps import cancel_run, model_cost, spent
from codeyard.workflows.step_base import StepFailed, label
from codeyard.workflows.worktree_steps import shell_of_step

if TYPE_CHECKING:
    from codeyard.workflows.engine import Execution

__all__ = [
    "HANDLERS",
    "StepFailed",
    "cancel_run",
    "execute",
    "is_pure",
    "label",
    "records_start",
    "spent",
]


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


async def execute(x: Execution, step: m.Step, key: str, scope: dict[str, Any]) -> dict[str, Any]:
    handler = HANDLERS[type(step)]
    output: dict[str, Any] = await handler(x, step, key, scope)
    return output


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
            check = await shell_of_step(x, until, step.in_, scope, 3600, check_key)
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


HANDLERS: dict[type, Any] = {
    m.RunStep: run_steps.run_step,
    m.ShellStep: worktree_steps.shell_step,
    m.ApprovalStep: wait_steps.approval_step,
    m.WaitStep: wait_steps.wait_step,
    m.ExtractStep: extract_step,
    m.IfStep: if_step,
    m.ParallelStep: parallel_step,
    m.ForeachStep: foreach_step,
    m.LoopStep: loop_step,
    m.LandStep: worktree_steps.land_step,
    m.CompareStep: worktree_steps.compare_step,
}
