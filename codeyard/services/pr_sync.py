"""The pull-request loop's pushes (issue 21): a run's branch kept in step with its pull request.

After a turn of a run whose pull request is open (status ``review``), once the repository's
required local checks pass (if it has any), :func:`follow_turns` commits what is left, rebases
when the base moved on the remote, pushes the run branch to the pull request, records the new
head, and completes the run again. A conflict or a push GitHub refuses (the branch moved under
it) leaves the run in ``review`` with the reason: nothing is force-pushed over someone's
commits. When the base branch moves while the run is idle, :func:`rebase_idle` rebases and
force-pushes with lease.

Apart from what turns GitHub's news into the next turn (``services.pr_loop``, which calls
:func:`rebase_idle`): this half acts after a turn, that one before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codeyard.cluster import claims
from codeyard.domain import events as ev
from codeyard.domain.errors import CodeyardError, Conflict
from codeyard.domain.status import RunStatus, pull_request_open
from codeyard.events.stream import follow_types
from codeyard.github.feedback import pull_repo
from codeyard.run_workspace.worktree_dispatch import Here, in_worktrees
from codeyard.run_workspace.worktree_writes import PR_SYNC, PrSyncJob
from codeyard.services import checks as check_service
from codeyard.services import profile
from codeyard.services import sandbox as sandbox_service
from codeyard.services.context import Services
from codeyard.store import fencing, projects, runs
from codeyard.store.writer import Tx
from codeyard.workspace import branches

__all__ = ["find_pull", "follow_turns", "push_after_turn", "rebase_idle"]

log = logging.getLogger(__name__)
S = RunStatus
#: One sync of a run's branch at a time (after a turn, or because the base moved).
_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)


def _pulls(run: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's pull requests: the stored value's first and its ``others`` (one per repository)."""
    first = run.get("pull_request")
    if not isinstance(first, dict):
        return []
    return [first, *(first.get("others") or [])]


def find_pull(run: dict[str, Any], repo: str, number: int) -> dict[str, Any] | None:
    """The run's pull request ``repo#number``, if it has it."""
    for pull in _pulls(run):
        if pull_repo(pull) == repo and int(pull["number"]) == number:
            return pull
    return None


@dataclass
class _Sync:
    """What syncing a run branch with its pull request did, per repository."""

    heads: dict[str, str] = field(default_factory=dict)
    pushed: dict[str, bool] = field(default_factory=dict)  # repo id → forced (after a rebase)
    rebased: dict[str, str] = field(default_factory=dict)
    onto: str | None = None
    refused: str | None = None


async def _sync(
    svc: Services,
    run: dict[str, Any],
    repos: dict[str, dict[str, Any]],
    message: str,
    push_env: dict[str, str] | None = None,
) -> _Sync:
    """Commit what is left, rebase onto the base branch if it moved on the remote, push.

    The commit and rebase are made where the worktrees are (this server, or their worker host:
    ``worktree_writes``); the push from the project's repository, with the owner's credentials.
    Rebased means the branch's history changed, so the push is ``--force-with-lease``: it
    overwrites only the pull request head Codeyard pushed last, never someone else's commits.
    A conflict rebases nothing and pushes nothing: ``refused`` says where it conflicts.
    """
    out = _Sync()
    by_repo = {p.get("repo_id"): p for p in _pulls(run)}
    job = PrSyncJob(
        dict(run["worktrees"]),
        {rid: str(repos[rid]["path"]) for rid in run["worktrees"]},
        run["branch"],
        message,
        {
            rid: str((by_repo.get(rid) or {}).get("base") or repos[rid]["default_branch"])
            for rid in run["worktrees"]
        },
    )
    here = Here(svc.engine, svc.writer, lambda: sandbox_service.current(svc))
    try:
        synced = await in_worktrees(svc.executor, run, PR_SYNC, job, here)
    except Conflict as exc:  # the worktrees' host is gone
        out.refused = f"the run's work could not be committed for its pull request: {exc.detail}"
        return out
    out.heads, out.rebased, out.onto = synced.heads, synced.rebased, synced.onto
    if synced.refused is not None:
        out.refused = synced.refused
        return out
    for repo_id in run["worktrees"]:
        forced = repo_id in out.rebased
        try:
            path = Path(repos[repo_id]["path"])
            await branches.push(path, run["branch"], force=forced, env=push_env)
        except CodeyardError as exc:
            out.refused = f"pushing to the pull request was refused: {exc.detail}"
            return out
        out.pushed[repo_id] = forced
    return out


async def _record(tx: Tx, run: dict[str, Any], done: _Sync) -> dict[str, Any]:
    """The events of a sync, and the pull request value with its new heads."""
    run_id = run["id"]
    if done.rebased:
        await tx.emit_one(run_id, ev.GitRebased(heads=dict(done.rebased), onto=done.onto))
    for repo_id, forced in done.pushed.items():
        pushed = ev.GitPushed(repo_id=repo_id, branch=run["branch"], remote="origin", force=forced)
        await tx.emit_one(run_id, pushed)
    if done.refused is not None:
        await tx.emit_one(run_id, ev.ErrorEvent(message=done.refused, detail=None))
    value = dict(run["pull_request"])
    value["others"] = [dict(o) for o in value.get("others") or []]
    for pull in [value, *value["others"]]:
        if pull.get("repo_id") in done.pushed:
            pull["head_sha"] = done.heads[pull["repo_id"]]
    if not value["others"]:
        del value["others"]
    return value


def _in_pr_review(run: dict[str, Any]) -> bool:
    """A run idle after a turn whose pull request was opened: what a push is for."""
    return S(run["status"]) == S.REVIEW and run.get("resolution") == "pr_created"


async def _load(
    svc: Services, run_id: str, *, pushing: bool = False
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The run and its project's repositories (``pushing``: these only for a run a push is for;
    most runs that end a turn have no pull request)."""
    async with svc.engine.connect() as conn:
        run = await runs.get(conn, run_id)
        if pushing and not _in_pr_review(run):
            return run, {}
        repos = {r["id"]: r for r in await projects.repos_of(conn, run["project_id"])}
    return run, repos


def _commit_message(run: dict[str, Any]) -> str:
    return f"{run['title']}\n\nCodeyard run #{run['number']} ({run['provider']})"


async def push_after_turn(svc: Services, run_id: str) -> None:
    """A run with an open pull request finished a turn (``review``): commit what is left,
    rebase if the base moved, push, record the new heads, and complete the run again. Refused
    (conflict, push rejected): it stays in ``review`` with an ``error`` event saying why."""
    async with _locks[run_id]:
        run, repos = await _load(svc, run_id, pushing=True)
        if not _in_pr_review(run):
            return
        if not pull_request_open(run["pull_request"]) or not run["worktrees"]:
            await svc.writer.run(lambda tx: _close(tx, run_id))
            return
        try:
            # The repository's required local checks gate a pull request's update as they gate
            # opening it; not passed yet: the suite's end calls again (see follow_turns).
            await check_service.require_passing(svc, run)
        except Conflict as exc:
            log.info("run %s not pushed to its pull request yet: %s", run_id, exc.detail)
            return
        with fencing.acting_for(run):  # a run a new turn took meanwhile is not pushed
            await fencing.verify(svc.engine)
            async with profile.push_env(svc, run["created_by"]) as env:  # the owner's SSH key
                done = await _sync(svc, run, repos, _commit_message(run), env)
            await svc.writer.run(lambda tx: _record_turn_push(tx, run_id, done))


async def _record_turn_push(tx: Tx, run_id: str, done: _Sync) -> None:
    current = await runs.lock(tx, run_id)
    value = await _record(tx, current, done)
    if done.refused is not None:
        await runs.update_fields(tx, run_id, pull_request=value)
    elif S(current["status"]) == S.REVIEW:
        await runs.set_status(
            tx,
            run_id,
            S.COMPLETED,
            f"pushed to pull request {value.get('url')}",
            resolution="pr_created",
            pull_request=value,
        )


async def _close(tx: Tx, run_id: str) -> None:
    """The pull request was merged or closed during the turn: nothing to push it to, the run is
    done (completed, as it was before the turn)."""
    run = await runs.lock(tx, run_id)
    if S(run["status"]) == S.REVIEW:
        state = (run["pull_request"] or {}).get("state") or "gone"
        await runs.set_status(tx, run_id, S.COMPLETED, f"pull request {state}; nothing pushed")


async def rebase_idle(svc: Services, run_id: str, repo: str, number: int, branch: str) -> None:
    """The base branch of the run's open pull request moved: rebase the idle run branch onto
    it and force-push with lease; a conflict is told on the run (``error``), nothing pushed."""
    async with _locks[run_id]:
        run, repos = await _load(svc, run_id)
        pull = find_pull(run, repo, number)
        if (
            pull is None
            or pull.get("state") != "open"
            or pull.get("base") != branch
            or S(run["status"]) != S.COMPLETED
            or not run["worktrees"]
        ):
            return  # a turn under way rebases when it pushes
        async with profile.push_env(svc, run["created_by"]) as env:
            done = await _sync(svc, run, repos, _commit_message(run), env)
        if not done.rebased and done.refused is None:
            return  # already on top of the base: nothing was pushed

        async def job(tx: Tx) -> None:
            current = await runs.lock(tx, run_id)
            await runs.update_fields(tx, run_id, pull_request=await _record(tx, current, done))

        await svc.writer.run(job)


async def follow_turns(svc: Services, act: check_service.AfterTurn | None = None) -> None:
    """Whenever a run with an open pull request ends a turn (or its after-turn checks pass),
    push it to the pull request (``act``: the real push unless a test passes its own). Through
    ``follow_types``: a dropped subscription is made good from the log, so no turn goes
    unpushed."""
    act = act or _push_logged
    types = frozenset({"run.status", "check.suite_completed"})
    pending: set[asyncio.Task[None]] = set()
    try:
        async with contextlib.aclosing(follow_types(svc.engine, svc.hub, types)) as feed:
            async for batch in feed:
                for event in batch:
                    ended = event.type == "run.status" and event.data.get("to") == S.REVIEW
                    passed = event.type == "check.suite_completed" and event.data.get("passed")
                    if ended or passed:
                        task = asyncio.create_task(act(svc, event.run_id, event.id))
                        pending.add(task)
                        task.add_done_callback(pending.discard)
    finally:
        for task in list(pending):
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


async def _push_logged(svc: Services, run_id: str, event_id: int) -> None:
    try:
        # Most runs ending a turn have no pull request: told by the run's status and
        # resolution alone, before any claim (a write on PostgreSQL) or read of the whole row.
        found = await runs.status_of(svc.engine, run_id)
        if found is None or not _in_pr_review({"status": found[0], "resolution": found[1]}):
            return
        # Every API server sees the event; one pushes (issue 16).
        if await claims.claim(svc.engine, svc.writer, f"pr-push:{event_id}"):
            await push_after_turn(svc, run_id)
    except Exception:  # one run's push must not stop the follower
        log.warning("pushing run %s to its pull request failed", run_id, exc_info=True)
