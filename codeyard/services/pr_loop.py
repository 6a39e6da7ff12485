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

After such a turn the run branch is pushed to the pull request (``services.pr_sync``), which
also rebases an idle run branch when the base moved.
"""

from __future__ import annotations

import logging
from typing import Any

from codeyard.checks import MAX_ATTEMPTS, ci_prompt, review_prompt, trim_log
from codeyard.checks.spec import LOG_LIMIT
from codeyard.domain import events as ev
from codeyard.domain.errors import CodeyardError
from codeyard.domain.status import RunStatus
from codeyard.github.feedback import Signal, ci_key, pull_repo, review_key, scope
from codeyard.github.pr_api import FailedCheck, PrFeedbackApi
from codeyard.prs.base import PrConfig
from codeyard.services import pr_sync
from codeyard.services import runs as run_service
from codeyard.services.context import Services
from codeyard.store import checks as ledger
from codeyard.store import runs
from codeyard.store.writer import Tx

__all__ = ["handle"]

log = logging.getLogger(__name__)
S = RunStatus
#: A run takes a CI fix turn only when idle with its work pushed: ``completed``. In ``review``
#: its last turn is not pushed yet (or the push was refused): a failure of the pushed head
#: would be stale by the time the agent saw it.
_IDLE = frozenset({S.COMPLETED})


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
            await pr_sync.rebase_idle(svc, run_id, repo, number, signal.branch)
    except CodeyardError as exc:
        log.warning("pull request %s#%s of run %s: %s", repo, number, run_id, exc.detail)


async def _set_state(svc: Services, run_id: str, repo: str, number: int, state: str) -> None:
    async def job(tx: Tx) -> None:
        run = await runs.lock(tx, run_id)
        pull = pr_sync.find_pull(run, repo, number)
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
    pull = pr_sync.find_pull(run, repo, number)
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
    pull = pr_sync.find_pull(run, repo, number)
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
