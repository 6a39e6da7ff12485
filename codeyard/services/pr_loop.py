"""The pull-request loop (issue 21): a run whose pull request is open keeps working on it.

A run that opened a pull request is ``completed`` (resolution ``pr_created``); while the pull
request is open the state machine lets it be queued again (``domain.status.WHILE_PR_OPEN``).
What GitHub says about it (a webhook delivery, or the poller without webhooks) is turned into
the next turn here:

* **CI failed** on the pull request's current head: the failing checks' logs (fetched first;
  only the checks the base branch's protection requires, when it names any),
  annotations and URLs become the turn's message — once per (pull request, head SHA), only
  while the run is idle, at most :data:`~codeyard.checks.MAX_ATTEMPTS` times per pull request
  (a person's comment resets the count), then ``feedback.exhausted`` and a notification.
* **Changes requested** by a person: the review's body and each inline comment are stored as
  ``pr.review_comment`` events and become the turn's message with their file and line.
* **Merged or closed**: the stored pull request says so, and the run is done for good.
* **The base branch moved** (a ``push`` delivery, or the poller saw a new base tip): an idle
  run branch is rebased onto it (the result computed before anything moves) and force-pushed
  with lease; a conflict changes nothing and is told on the run as an ``error`` event.

After such a turn (status ``review``), once the repository's required local checks pass (if it
has any), :func:`follow_turns` commits what is left, rebases when the base moved on the remote,
pushes the run branch to the pull request, records the new head,
and completes the run again. A conflict or a push GitHub refuses (the branch moved under it)
leaves the run in ``review`` with the reason: nothing is force-pushed over someone's commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codeyard.checks import MAX_ATTEMPTS, ci_prompt, review_prompt, trim_log
from codeyard.checks.spec import LOG_LIMIT
from codeyard.cluster import claims
from codeyard.domain import events as ev
from codeyard.domain.errors import CodeyardError, Conflict
from codeyard.domain.status import RunStatus, pull_request_open
from codeyard.events.stream import follow_types
from codeyard.github.feedback import Signal, ci_key, pull_repo, review_key, scope
from codeyard.github.pr_api import FailedCheck, PrFeedbackApi
from codeyard.prs.base import PrConfig
from codeyard.run_workspace.worktree_ops import PR_SYNC, Here, PrSyncJob, in_worktrees
from codeyard.services import checks as check_service
from codeyard.services import profile
from codeyard.services import runs as run_service
from codeyard.services import sandbox as sandbox_service
from codeyard.services.context import Services
from codeyard.store import checks as ledger
from codeyard.store import fencing, projects, runs
from codeyard.store.writer import Tx
from codeyard.workspace import branches

__all__ = ["follow_turns", "handle", "push_after_turn"]

log = logging.getLogger(__name__)
S = RunStatus
#: A run takes a CI fix turn only when idle with its work pushed: ``completed``. In ``review``
#: its last turn is not pushed yet (or the push was refused): a failure of the pushed head
#: would be stale by the time the agent saw it.
_IDLE = frozenset({S.COMPLETED})
#: One sync of a run's branch at a time (after a turn, or because the base moved).
_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)


def _pulls(run: dict[str, Any]) -> list[dict[str, Any]]:
    first = run.get("pull_request")
    if not isinstance(first, dict):
        return []
    return [first, *(first.get("others") or [])]


def _find(run: dict[str, Any], repo: str, number: int) -> dict[str, Any] | None:
    for pull in _pulls(run):
        if pull_repo(pull) == repo and int(pull["number"]) == number:
            return pull
    return None


def _with(run: dict[str, Any], repo: str, number: int, **changes: Any) -> dict[str, Any]:
    """The run's stored pull request value with one pull's fields changed."""
    first = dict(run["pull_request"])
    if pull_repo(first) == repo and int(first["number"]) == number:
        first.update(changes)
    others = [
        {**p, **changes} if pull_repo(p) == repo and int(p["number"]) == number else p
        for p in first.get("others") or []
    ]
    if others:
        first["others"] = others
    return first


async def handle(svc: Services, run_id: str, repo: str, number: int, signal: Signal) -> None:
    """Act on one signal about the run's pull request ``repo#number``. Errors from GitHub are
    logged, not raised: the delivery is on the timeline already, and the poller or the next
    delivery tries again."""
    try:
        if signal.kind == "pr_state" and signal.state:
            await _set_state(svc, run_id, repo, number, signal.state)
        elif signal.kind == "human_comment":
            await svc.writer.run(lambda tx: ledger.reset(tx, scope(repo, number)))
        elif signal.kind == "ci_failed" and signal.sha:
            await _ci_failed(svc, run_id, repo, number, signal.sha)
        elif signal.kind == "changes_requested" and signal.review:
            await _changes_requested(svc, run_id, repo, number, dict(signal.review))
        elif signal.kind == "base_moved" and signal.branch:
            await _rebase_idle(svc, run_id, repo, number, signal.branch)
    except CodeyardError as exc:
        log.warning("pull request %s#%s of run %s: %s", repo, number, run_id, exc.detail)


async def _set_state(svc: Services, run_id: str, repo: str, number: int, state: str) -> None:
    async def job(tx: Tx) -> None:
        run = await runs.lock(tx, run_id)
        pull = _find(run, repo, number)
        if pull is not None and pull.get("state") != state:
            await runs.update_fields(tx, run_id, pull_request=_with(run, repo, number, state=state))

    await svc.writer.run(job)


async def _exhausted(svc: Services, run_id: str, key: str, cap_scope: str) -> None:
    async def job(tx: Tx) -> None:
        # Said once per cap (the key is unique; a person's comment starts a new count).
        if await ledger.mark(tx, f"exhausted:{cap_scope}:{key}", cap_scope, run_id, "ci"):
            reason = f"CI still fails after {MAX_ATTEMPTS} fix turns; over to you"
            event = ev.FeedbackExhausted(source="ci", attempts=MAX_ATTEMPTS, reason=reason)
            await tx.emit_one(run_id, event)

    await svc.writer.run(job)


async def _ci_failed(svc: Services, run_id: str, repo: str, number: int, sha: str) -> None:
    async with svc.engine.connect() as conn:
        run = await runs.get(conn, run_id)
        cap_scope, key = scope(repo, number), ci_key(repo, number, sha)
        used = await ledger.attempts(conn, cap_scope)
    pull = _find(run, repo, number)
    if pull is None or pull.get("state") != "open" or not run["worktrees"]:
        return
    if pull.get("head_sha") and pull["head_sha"] != sha:
        return  # an older head: its failure was fixed or superseded by a newer push
    if S(run["status"]) not in _IDLE:
        return  # a turn is under way: its push makes a new head, whose checks decide
    if used >= MAX_ATTEMPTS:
        await _exhausted(svc, run_id, key, cap_scope)
        return
    api = PrFeedbackApi(PrConfig.from_env())
    failed = await api.failed_checks(repo, sha)
    required = await api.required_for(repo, str(pull.get("base") or ""))
    if required:  # the base's protection names what must pass: only those are the agent's
        failed = [f for f in failed if f.name in required]
    if not failed:
        return  # re-run and passed meanwhile, or only checks nobody requires failed
    attempt = used + 1

    async def record(tx: Tx) -> bool:
        if not await ledger.mark(tx, key, cap_scope, run_id, "ci"):
            return False
        sent = ev.FeedbackSent(source="ci", key=key, attempt=attempt, limit=MAX_ATTEMPTS)
        await tx.emit_one(run_id, sent)
        return True

    if not await svc.writer.run(record):
        return  # this head's failure was handed back already
    await run_service.message(
        svc, run_id, _ci_message(failed, number, sha, attempt), author="codeyard", source="ci"
    )


def _ci_message(failed: list[FailedCheck], number: int, sha: str, attempt: int) -> str:
    """One message for every failed check of the head: each log's end gets an equal share."""
    share = max(LOG_LIMIT // len(failed), 500)
    logs = "\n\n".join(f"== {f.name} ==\n{_tail(f.log, share)}" for f in failed)
    notes = [a for f in failed for a in f.annotations]
    return ci_prompt(
        name=", ".join(f.name for f in failed),
        number=number,
        sha=sha,
        url=" ".join(f.url for f in failed if f.url),
        log=logs,
        annotations=notes,
        attempt=attempt,
    )


def _tail(text: str, limit: int) -> str:
    return trim_log(text, limit) or "(no log)"


async def _changes_requested(
    svc: Services, run_id: str, repo: str, number: int, review: dict[str, Any]
) -> None:
    run = await runs.get(svc.engine, run_id)
    pull = _find(run, repo, number)
    if pull is None or pull.get("state") != "open" or "id" not in review:
        return
    review_id = int(review["id"])
    key, review_scope = review_key(repo, number, review_id), f"review:{repo}#{number}"
    comments = await PrFeedbackApi(PrConfig.from_env()).review_comments(repo, number, review_id)
    reviewer = str((review.get("user") or {}).get("login") or "A reviewer")
    state = str(review.get("state") or "changes_requested").lower()

    def comment(c: dict[str, Any] | None) -> ev.PrReviewComment:
        """An inline comment, or (``None``) the review's own body."""
        item = c if c is not None else review
        line = item.get("line") or item.get("original_line") if c is not None else None
        return ev.PrReviewComment(
            repo=repo,
            number=number,
            review_id=review_id,
            comment_id=int(item["id"]) if c is not None else None,
            user=str((item.get("user") or {}).get("login") or reviewer),
            state=state,
            path=str(item["path"]) if c is not None and item.get("path") else None,
            line=int(line) if line else None,
            body=str(item.get("body") or ""),
            url=str(item["html_url"]) if item.get("html_url") else None,
        )

    async def record(tx: Tx) -> int | None:
        if not await ledger.mark(tx, key, review_scope, run_id, "review"):
            return None
        events: list[ev.NewEvent] = [comment(None)] if review.get("body") else []
        events += [comment(c) for c in comments]
        for event in events:
            await tx.emit_one(run_id, event)
        attempt = await ledger.attempts(tx.conn, review_scope)
        # Reviews are not capped: a person asked (``limit`` 0).
        await tx.emit_one(
            run_id, ev.FeedbackSent(source="review", key=key, attempt=attempt, limit=0)
        )
        return attempt

    if await svc.writer.run(record) is None or not run["worktrees"]:
        return
    prompt = review_prompt(
        reviewer=reviewer,
        number=number,
        summary=str(review.get("body") or ""),
        comments=comments,
    )
    await run_service.message(svc, run_id, prompt, author="codeyard", source="review")


# --- after the turn, or when the base moved: push to the pull request -------------------


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
    ``worktree_ops``); the push from the project's repository, with the owner's credentials.
    Rebased means the branch's history changed, so the push is ``--force-with-lease``: it
    overwrites only the pull request head Codeyard pushed last, never someone else's commits.
    A conflict rebases nothing and pushes nothing: ``refused`` says where it conflicts.
    """
    out = _Sync()
    pulls = {p.get("repo_id"): p for p in _pulls(run)}
    job = PrSyncJob(
        dict(run["worktrees"]),
        {rid: str(repos[rid]["path"]) for rid in run["worktrees"]},
        run["branch"],
        message,
        {
            rid: str((pulls.get(rid) or {}).get("base") or repos[rid]["default_branch"])
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


async def _rebase_idle(svc: Services, run_id: str, repo: str, number: int, branch: str) -> None:
    """The base branch of the run's open pull request moved: rebase the idle run branch onto
    it and force-push with lease; a conflict is told on the run (``error``), nothing pushed."""
    async with _locks[run_id]:
        run, repos = await _load(svc, run_id)
        pull = _find(run, repo, number)
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
