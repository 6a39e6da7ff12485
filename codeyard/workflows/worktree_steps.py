"""Steps that work on a run step's worktree or result: shell checks, landing, comparing
candidates."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from codeyard.domain.errors import CodeyardError
from codeyard.run_workspace.on_host import NotRunOnHost, OnWorktreeHost, ShellJob
from codeyard.services import resolution, review
from codeyard.services import runs as run_service
from codeyard.services import sandbox as sandbox_service
from codeyard.store import schema
from codeyard.workflows import expressions as ex
from codeyard.workflows import judging
from codeyard.workflows import model as m
from codeyard.workspace import shell

if TYPE_CHECKING:
    from codeyard.workflows.engine import Execution
from codeyard.workflows.step_base import S, StepFailed, step_output


async def shell_of_step(
    x: Execution, command: str, run_step_id: str, scope: dict[str, Any], timeout: float, key: str
) -> dict[str, Any]:
    source = step_output(scope, run_step_id, "worktree")
    return await shell_in(x, command, source, run_step_id, timeout, key)


async def shell_in(
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
    output = await shell_of_step(x, command, step.in_, scope, step.timeout_seconds, key)
    if output["exit_code"] != 0 and not step.allow_failure:
        why = "timed out" if output["timed_out"] else f"exited {output['exit_code']}"
        kind = "timeout" if output["timed_out"] else "exit_code"
        raise StepFailed(f"`{command}` {why}: {str(output['stdout'])[-500:]}", kind)
    return output


async def land(x: Execution, run_id: str, action: str, target: str | None) -> dict[str, Any]:
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
    run_id = step_output(scope, step.step, "run_id")["run_id"]
    return await land(x, run_id, step.action, step.target_branch)


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
                result = await shell_in(x, command, output, name, 3600, check_key)
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
        landed = await land(x, winner["run_id"], step.land, None)
        for other in ranked:
            if other is not winner:
                await land(x, other["run_id"], "discard", None)
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
