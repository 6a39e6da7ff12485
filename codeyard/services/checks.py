"""Local checks (issue 21): configure them, run them, gate landing on them, feed failures back.

Runs of checks are serialized per run (a manual run and an after-turn run never interleave in
one worktree). The results are events (``check.started``, ``check.completed``,
``check.suite_completed``); landing a run whose repository requires checks needs a passing
suite recorded for exactly the worktree state being landed. The fix loop hands a failing suite
back to the agent as its next turn once per failure (same state, same failing checks: once) and
at most :data:`~codeyard.checks.MAX_ATTEMPTS` times per run, then says ``feedback.exhausted``.
With an executor that keeps worktrees on worker hosts (``run_workspace.on_host``), the host that
holds the run's worktrees runs the suite and stores each check's events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict
from collections.abc import Callable, Coroutine
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from codeyard.auth.principal import Principal
from codeyard.checks import MAX_ATTEMPTS, CheckResult, CheckSpec, local_failure_key, local_prompt
from codeyard.checks.runner import SuiteResult, run_suite, worktree_trees
from codeyard.cluster import claims
from codeyard.domain import events as ev
from codeyard.domain.errors import Conflict, Forbidden, InvalidTransition
from codeyard.domain.status import RunStatus
from codeyard.events.stream import follow_types
from codeyard.run_workspace.on_host import ChecksJob, NotRunOnHost, OnWorktreeHost, TreesJob
from codeyard.services import ownership
from codeyard.services import runs as run_service
from codeyard.services import sandbox as sandbox_service
from codeyard.services.context import Services
from codeyard.store import audit, projects, runs
from codeyard.store import checks as store
from codeyard.store import events as event_store
from codeyard.store.writer import Tx

__all__ = [
    "follow_turns",
    "get_config",
    "latest",
    "put_config",
    "require_passing",
    "run_checks",
]

log = logging.getLogger(__name__)
S = RunStatus
_BUSY = (S.QUEUED, S.PREPARING, S.RUNNING, S.WAITING)
_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
#: What follows a turn's end: (services, run id, the ``run.status`` event's id).
AfterTurn = Callable[[Services, str, int], Coroutine[Any, Any, None]]


async def get_config(svc: Services, repo_id: str) -> dict[str, Any]:
    async with svc.engine.connect() as conn:
        await projects.get_repo(conn, repo_id)  # 404 when unknown
        return await store.get_config(conn, repo_id)


async def put_config(
    svc: Services, principal: Principal, repo_id: str, config: dict[str, Any]
) -> dict[str, Any]:
    """Replace a repository's checks. Check commands run in every user's runs, like setup
    scripts, so changing them needs ``admin`` and is audited."""
    async with svc.engine.connect() as conn:
        repo = await projects.get_repo(conn, repo_id)
        project = await projects.get_project(conn, repo["project_id"])
        old = await store.get_config(conn, repo_id)
    ownership.require_project_manager(principal, project, "change its repositories' checks")
    if config["checks"] != old["checks"] and not principal.is_admin:
        raise Forbidden(
            "Changing check commands needs the 'admin' scope: they run in every user's runs of "
            "this repository. Ask an admin to change them.",
            required_scope="admin",
        )

    async def job(tx: Tx) -> None:
        await store.save_config(tx, repo_id, config)
        await audit.record(
            tx,
            principal.user_id or "admin",
            "repo.checks",
            repo_id,
            {"old": old["checks"], "new": config["checks"], "project_id": repo["project_id"]},
        )

    await svc.writer.run(job)
    return await get_config(svc, repo_id)


async def _configs(svc: Services, run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    async with svc.engine.connect() as conn:
        return await _configs_in(conn, run)


async def _configs_in(conn: AsyncConnection, run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {rid: await store.get_config(conn, rid) for rid in run["repo_ids"]}


def _specs(configs: dict[str, dict[str, Any]]) -> dict[str, list[CheckSpec]]:
    return {rid: [CheckSpec(**c) for c in cfg["checks"]] for rid, cfg in configs.items()}


async def run_checks(
    svc: Services, ref: str, trigger: str = "manual", key: str | None = None
) -> dict[str, Any]:
    """Run every check of the run's repositories now; the suite result (also as events).

    ``key`` names the suite (an after-turn suite: its turn end), so an executor that runs it on
    the worktrees' host re-attaches to it when asked again instead of running it twice."""
    run = await run_service.get(svc, ref)
    if not run["worktrees"]:
        raise InvalidTransition(
            f"Run {run['number']} has no worktree (never started, discarded or cleaned up): "
            "there is nothing to check.",
            current_status=run["status"],
        )
    if S(run["status"]) in _BUSY:
        raise InvalidTransition(
            f"Run {run['number']} is working; run its checks once it is idle (status review).",
            current_status=run["status"],
        )
    configs = await _configs(svc, run)
    specs = _specs(configs)
    if not any(specs.get(rid) for rid in run["worktrees"]):
        raise Conflict(
            f"Run {run['number']}'s repositories have no checks; add some with "
            'PUT /api/repos/{repo_id}/checks (e.g. {"checks": [{"name": "tests", '
            '"command": "pytest -q"}]}).',
        )
    async with _locks[run["id"]]:
        suite = await _run(svc, run, specs, trigger, key or uuid.uuid4().hex)
    fix_loop = any(configs[rid]["fix_loop"] for rid in run["worktrees"])
    if trigger == "turn" and fix_loop and not suite.passed:
        await _hand_back(svc, run, suite)
    return _suite_view(suite)


async def _run(
    svc: Services, run: dict[str, Any], specs: dict[str, list[CheckSpec]], trigger: str, key: str
) -> SuiteResult:
    async def report(event: ev.NewEvent) -> None:
        await svc.writer.append(run["id"], [event])

    env = {"CODEYARD_RUN_ID": run["id"], "CODEYARD_BRANCH": run["branch"] or ""}
    executor = svc.executor
    if isinstance(executor, OnWorktreeHost):
        # The worktrees are on a worker host's disk: that host runs the suite and stores each
        # check's events; a host that is gone fails the suite, naming the host and the fix.
        if not run["worker_host"]:
            raise Conflict(f"Run {run['number']} was never placed on a worker host.")
        job = ChecksJob(run["worker_host"], run["id"], run["worktrees"], specs, trigger, env, key)
        try:
            suite = await executor.run_checks(job)
        except NotRunOnHost as exc:
            await _not_run(svc, run, specs, trigger, str(exc))
            raise Conflict(f"Run {run['number']}'s checks did not run: {exc}.") from exc
    else:
        suite = await run_suite(
            run["worktrees"],
            specs,
            trigger=trigger,
            sandbox=await sandbox_service.current(svc),
            env=env,
            report=report,
        )
    done = ev.CheckSuiteCompleted(
        trigger=trigger,
        passed=suite.passed,
        failed=[r.label for r in suite.failures],
        trees=suite.trees,
    )
    await svc.writer.append(run["id"], [done])
    return suite


async def _not_run(
    svc: Services, run: dict[str, Any], specs: dict[str, list[CheckSpec]], trigger: str, why: str
) -> None:
    """Record a suite that could not run as failed, each check saying why (the run's timeline
    shows it; landing with required checks stays refused). No fix turn: not the agent's doing."""
    failed = [
        CheckResult(rid, spec.name, spec.command, False, None, False, 0, why)
        for rid in run["worktrees"]
        for spec in specs.get(rid, ())
    ]
    events: list[ev.NewEvent] = [
        ev.CheckCompleted(
            repo_id=r.repo_id, name=r.name, command=r.command, ok=False, exit_code=None,
            timed_out=False, duration_ms=0, log_tail=why,
        )
        for r in failed
    ]  # fmt: skip
    done = ev.CheckSuiteCompleted(
        trigger=trigger, passed=False, failed=[r.label for r in failed], trees={}
    )
    await svc.writer.append(run["id"], [*events, done])


def _suite_view(suite: SuiteResult) -> dict[str, Any]:
    return {
        "passed": suite.passed,
        "trees": suite.trees,
        "results": [
            {
                "repo_id": r.repo_id,
                "name": r.name,
                "command": r.command,
                "ok": r.ok,
                "exit_code": r.exit_code,
                "timed_out": r.timed_out,
                "duration_ms": r.duration_ms,
                "log_tail": r.log_tail,
            }
            for r in suite.results
        ],
    }


async def _hand_back(svc: Services, run: dict[str, Any], suite: SuiteResult) -> None:
    """The fix loop: one new turn per distinct failure, at most MAX_ATTEMPTS per run."""
    key = local_failure_key(run["id"], suite.trees, [r.label for r in suite.failures])
    scope = f"run:{run['id']}"
    async with svc.engine.connect() as conn:
        used = await store.attempts(conn, scope)
    if used >= MAX_ATTEMPTS:

        async def exhausted(tx: Tx) -> None:
            # Said once per cap: the key is unique (a reset by a person starts a new count).
            if await store.mark(tx, f"exhausted:{scope}:{key}", scope, run["id"], "checks"):
                reason = f"local checks still fail after {MAX_ATTEMPTS} fix turns; over to you"
                await tx.emit_one(
                    run["id"],
                    ev.FeedbackExhausted(source="checks", attempts=MAX_ATTEMPTS, reason=reason),
                )

        await svc.writer.run(exhausted)
        return
    attempt = used + 1

    async def record(tx: Tx) -> bool:
        if not await store.mark(tx, key, scope, run["id"], "checks"):
            return False
        sent = ev.FeedbackSent(source="checks", key=key, attempt=attempt, limit=MAX_ATTEMPTS)
        await tx.emit_one(run["id"], sent)
        return True

    if not await svc.writer.run(record):
        return  # this exact failure was handed back already
    prompt = local_prompt(suite.failures, attempt)
    await run_service.message(svc, run["id"], prompt, author="codeyard", source="checks")


async def latest(svc: Services, ref: str) -> dict[str, Any] | None:
    """The last suite's outcome and whether it still matches the worktrees."""
    run = await run_service.get(svc, ref)
    async with svc.engine.connect() as conn:
        last = await event_store.last_of_type(conn, run["id"], "check.suite_completed")
    if last is None:
        return None
    checked = {r: p for r, p in run["worktrees"].items() if r in last["trees"]}
    try:
        current: dict[str, str] | None = await _trees(svc, run, checked)
    except Conflict:  # the worktrees' host is gone: not known to match
        current = None
    return {**last, "current": bool(run["worktrees"]) and current == last["trees"]}


async def _trees(svc: Services, run: dict[str, Any], worktrees: dict[str, str]) -> dict[str, str]:
    """The current state of ``worktrees``: read on their host when an executor keeps them on
    worker hosts; 409 naming the host and the fix when it is gone."""
    executor = svc.executor
    if not worktrees or not isinstance(executor, OnWorktreeHost) or not run["worker_host"]:
        return await worktree_trees(worktrees)
    try:
        return await executor.worktree_trees(TreesJob(run["worker_host"], run["id"], worktrees))
    except NotRunOnHost as exc:
        raise Conflict(f"Run {run['number']}'s worktrees could not be read: {exc}.") from exc


async def require_passing(svc: Services, run: dict[str, Any]) -> None:
    """Refuse (409) to land a run whose required checks have not passed on its current state."""
    configs = await _configs(svc, run)
    required = [rid for rid in run["worktrees"] if configs[rid]["required"]]
    required = [rid for rid in required if configs[rid]["checks"]]
    if not required:
        return
    async with svc.engine.connect() as conn:
        last = await event_store.last_of_type(conn, run["id"], "check.suite_completed")
    fix = (
        f"run them with POST /api/runs/{run['number']}/checks, fix what fails (or message the "
        "agent with the failure), and land again"
    )
    if last is None:
        raise Conflict(
            f"Run {run['number']}'s repository requires passing checks to land and they have "
            f"not run: {fix}.",
            checks_required=True,
        )
    if not last["passed"]:
        raise Conflict(
            f"Run {run['number']}'s checks failed ({', '.join(last['failed'])}): {fix}.",
            checks_required=True,
            failed=last["failed"],
        )
    trees = await _trees(svc, run, {rid: run["worktrees"][rid] for rid in required})
    if any(last["trees"].get(rid) != tree for rid, tree in trees.items()):
        raise Conflict(
            f"Run {run['number']}'s worktree changed since its checks passed: {fix}.",
            checks_required=True,
        )


async def _after_turn(svc: Services, run_id: str, event_id: int) -> None:
    async with svc.engine.connect() as conn:  # the run and its checks in one read
        run = await runs.get(conn, run_id)
        if not run["worktrees"] or S(run["status"]) != S.REVIEW:
            return
        configs = await _configs_in(conn, run)
    if any(configs[r]["after_turn"] and configs[r]["checks"] for r in run["worktrees"]):
        await run_checks(svc, run_id, trigger="turn", key=f"turn-{event_id}")


async def follow_turns(svc: Services, act: AfterTurn | None = None) -> None:
    """Whenever a run becomes idle after a turn (status ``review``), run its after-turn checks
    (``act``: the real ones unless a test passes its own). Through ``follow_types``: a dropped
    subscription is made good from the log, so no turn's end goes unchecked."""
    act = act or _after_turn_logged
    pending: set[asyncio.Task[None]] = set()
    try:
        async with contextlib.aclosing(
            follow_types(svc.engine, svc.hub, frozenset({"run.status"}))
        ) as feed:
            async for batch in feed:
                for event in batch:
                    if event.data.get("to") == S.REVIEW:
                        task = asyncio.create_task(act(svc, event.run_id, event.id))
                        pending.add(task)
                        task.add_done_callback(pending.discard)
    finally:
        for task in list(pending):
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


async def _after_turn_logged(svc: Services, run_id: str, event_id: int) -> None:
    try:
        # No repository checks after its turns (most installs): nothing to claim or read.
        if not await store.any_after_turn(svc.engine):
            return
        # Every API server sees the event; one runs the suite (issue 16).
        if await claims.claim(svc.engine, svc.writer, f"after-turn-checks:{event_id}"):
            await _after_turn(svc, run_id, event_id)
    except Exception:  # one run's checks must not stop the others
        log.warning("checks after run %s's turn failed", run_id, exc_info=True)
