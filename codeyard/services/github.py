"""GitHub webhooks (issue 21): receive, store once, process asynchronously, sweep for misses.

``receive`` is the whole synchronous part: verify ``X-Hub-Signature-256`` on the raw body
(403 and nothing stored otherwise), insert the delivery into the inbox keyed on
``X-GitHub-Delivery`` (a duplicate is acknowledged and ignored), remember the hook it came from,
and wake the :class:`Inbox`. The inbox turns each delivery about a run's pull request into a
``pr.updated`` event on that run, in the same transaction that marks the delivery processed, so
a crash can neither lose nor repeat one. GitHub does not redeliver failed deliveries by itself:
the :class:`Sweeper` lists each known hook's recent deliveries and asks GitHub to redeliver
those that failed and never reached the inbox. Without webhooks, pull requests are polled
instead (``services.github_poll``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from codeyard.domain import events as ev
from codeyard.domain.errors import BadRequest, CodeyardError, Forbidden
from codeyard.github.feedback import Signal, classify, pull_repo
from codeyard.github.signature import valid
from codeyard.prs.base import PrConfig
from codeyard.services import github_app, pr_loop
from codeyard.services.context import Services
from codeyard.services.loop_task import LoopTask
from codeyard.store import github as store
from codeyard.store.writer import Tx

__all__ = [
    "Inbox",
    "Sweeper",
    "deliveries",
    "receive",
    "sweep",
]

log = logging.getLogger(__name__)
#: Redeliveries asked for per sweep at most (each is one API request).
MAX_REDELIVER = 50


async def receive(
    svc: Services, headers: Mapping[str, str], raw: bytes, inbox: Inbox | None
) -> dict[str, Any]:
    """Store a delivery if its signature is right; ``duplicate`` when it was stored before."""
    secret = svc.settings.github_webhook_secret
    signature = headers.get("x-hub-signature-256")
    if not valid(secret, raw, signature):
        # A connected GitHub App signs its deliveries with its own secret.
        secret = await github_app.webhook_secret(svc) or secret
    if not valid(secret, raw, signature):
        why = (
            "no webhook secret is configured (set CODEYARD_GITHUB_WEBHOOK_SECRET to the hook's "
            "secret)"
            if not secret
            else "X-Hub-Signature-256 is missing or does not match the configured secret"
        )
        raise Forbidden(f"Webhook delivery refused: {why}. Nothing was stored.")
    delivery_id = headers.get("x-github-delivery", "").strip()
    event = headers.get("x-github-event", "").strip()
    if not delivery_id or not event or len(delivery_id) > 80 or len(event) > 60:
        raise BadRequest("A GitHub delivery needs X-GitHub-Delivery and X-GitHub-Event headers.")
    try:
        payload = json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"The delivery is not JSON ({exc}); send content type json.") from exc
    if not isinstance(payload, dict):
        raise BadRequest("The delivery's JSON is not an object.")
    repo = (payload.get("repository") or {}).get("full_name")
    hook_id = headers.get("x-github-hook-id", "").strip() or None
    target = headers.get("x-github-hook-installation-target-type", "").strip() or "repository"
    row = {
        "delivery_id": delivery_id,
        "event": event,
        "action": str(payload["action"])[:60] if payload.get("action") else None,
        "payload": raw.decode("utf-8", errors="replace"),
        "source": "webhook",
        "hook_id": hook_id,
        "repo": repo if isinstance(repo, str) else None,
    }

    async def job(tx: Tx) -> bool:
        stored = await store.add_delivery(tx, row)
        if stored and hook_id:
            await store.remember_hook(tx, hook_id, target[:40], row["repo"])
        return stored

    stored = await svc.writer.run(job)
    if stored and inbox is not None:
        inbox.wake()
    return {"delivery_id": delivery_id, "duplicate": not stored}


async def deliveries(
    svc: Services, limit: int, before: int | None, event: str | None
) -> dict[str, Any]:
    async with svc.engine.connect() as conn:
        rows = await store.list_deliveries(conn, limit=limit, before=before, event=event)
    cursor = str(rows[-1]["id"]) if len(rows) == limit else None
    return {"data": rows, "next_cursor": cursor}


_pull_repo = pull_repo


def describe(event: str, payload: Mapping[str, Any]) -> tuple[list[int], str | None, str]:
    """Which pull request numbers a delivery is about, the head SHA, and a one-line summary."""
    action = payload.get("action")
    if event == "pull_request":
        pr = payload.get("pull_request") or {}
        state = "merged" if pr.get("merged") else pr.get("state")
        head = (pr.get("head") or {}).get("sha")
        return (
            [int(pr.get("number") or payload.get("number") or 0)],
            head,
            f"pull request {action} ({state})",
        )
    if event in ("check_run", "check_suite"):
        item = payload.get(event) or {}
        numbers = [int(p["number"]) for p in item.get("pull_requests") or [] if p.get("number")]
        name = item.get("name") or (item.get("app") or {}).get("name") or event
        outcome = item.get("conclusion") or item.get("status")
        label = "check run" if event == "check_run" else "check suite"
        return numbers, item.get("head_sha"), f"{label} {name} {action}: {outcome}"
    if event in ("pull_request_review", "pull_request_review_comment"):
        pr = payload.get("pull_request") or {}
        item = payload.get("review") or payload.get("comment") or {}
        who = (item.get("user") or {}).get("login", "someone")
        what = (
            f"review {str(item.get('state', '')).lower()}"
            if event == "pull_request_review"
            else "review comment"
        )
        return [int(pr.get("number") or 0)], (pr.get("head") or {}).get("sha"), f"{what} by {who}"
    if event == "push":  # a branch moved: matched to pull requests by their base
        branch = str(payload.get("ref") or "").removeprefix("refs/heads/")
        return [], payload.get("after"), f"push to {branch}"
    if event == "status":  # commit statuses name no pull request: matched by head SHA
        sha = payload.get("sha")
        return [], sha, f"status {payload.get('context')}: {payload.get('state')}"
    if event == "issue_comment" and (payload.get("issue") or {}).get("pull_request"):
        who = ((payload.get("comment") or {}).get("user") or {}).get("login", "someone")
        return [int(payload["issue"]["number"])], None, f"comment by {who}"
    return [], None, f"{event} {action or ''}".strip()


async def _process(svc: Services, row: dict[str, Any]) -> None:
    """One delivery → ``pr.updated`` on each run whose pull request it is about; marked done
    in the same transaction; then what it means for the pull-request loop (a fix turn)."""
    payload: Any = None
    try:
        payload = json.loads(row["payload"])
        numbers, head, summary = describe(row["event"], payload)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        numbers, head, summary = [], None, f"not understood: {exc}"
    targets: list[tuple[str, int]] = []
    by_sha = not numbers and row["event"] == "status" and head
    base = _pushed_branch(row["event"], payload)
    if (numbers or by_sha or base) and row["repo"]:
        async with svc.engine.connect() as conn:
            for run in await store.runs_with_pull_requests(conn):
                if not isinstance(run["pull_request"], dict):
                    continue
                pulls = [run["pull_request"], *(run["pull_request"].get("others") or [])]
                for pull in pulls:
                    if _pull_repo(pull) != row["repo"]:
                        continue
                    if (
                        int(pull["number"]) in numbers
                        or (by_sha and pull.get("head_sha") == head)
                        or (base and pull.get("base") == base and pull.get("state") == "open")
                    ):
                        targets.append((run["id"], int(pull["number"])))

    async def job(tx: Tx) -> None:
        for run_id, number in targets:
            event = ev.PrUpdated(
                repo=row["repo"],
                number=number,
                event=row["event"],
                action=row["action"],
                delivery_id=row["delivery_id"],
                summary=summary,
                head_sha=head,
            )
            await tx.emit_one(run_id, event)
        where = ", ".join(sorted({r for r, _ in targets})) or "no run has this pull request"
        await store.mark_processed(tx, row["id"], f"{summary} → {where}")

    await svc.writer.run(job)
    signal = _signal(row["event"], payload) if targets else None
    for run_id, number in targets if signal else []:
        assert signal is not None
        await pr_loop.handle(svc, run_id, row["repo"], number, signal)


def _pushed_branch(event: str, payload: Any) -> str | None:
    """The branch a ``push`` delivery moved (pull requests based on it may need a rebase)."""
    if event != "push" or not isinstance(payload, dict):
        return None
    ref = str(payload.get("ref") or "")
    return ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else None


def _signal(event: str, payload: Any) -> Signal | None:
    try:
        return classify(event, payload) if isinstance(payload, dict) else None
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


class Inbox(LoopTask):
    """The asynchronous half of webhooks: processes stored deliveries in arrival order."""

    name = "codeyard-github-inbox"

    def __init__(self, svc: Services, poll_seconds: float = 5.0) -> None:
        self.svc = svc
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()

    def wake(self) -> None:
        self._wake.set()

    async def drain(self) -> int:
        """Process every stored, unprocessed delivery; how many."""
        done = 0
        while True:
            rows = await store.unprocessed(self.svc.engine)
            if not rows:
                return done
            for row in rows:
                await _process(self.svc, row)
                done += 1

    async def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.drain()
            except Exception:  # the rows stay unprocessed: retried on the next wake
                log.exception("processing GitHub deliveries failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)


async def sweep(svc: Services) -> dict[str, Any]:
    """Ask GitHub to redeliver every recent delivery of a known hook that failed and never
    reached the inbox (GitHub keeps deliveries for 3 days, never retries itself): repository
    hooks with the token, a connected GitHub App's own hook with the App's key."""
    async with svc.engine.connect() as conn:
        known_hooks = await store.hooks(conn)
    repo_hooks = [h for h in known_hooks if h["target"] == "repository" and h["repo"]]
    app_hooks = [h for h in known_hooks if h["target"] == "integration"]
    key = await github_app.app_key(svc) if app_hooks else None
    hooks = repo_hooks + (app_hooks if key else [])
    if not hooks:
        return {"hooks": 0, "listed": 0, "redelivered": 0, "problems": []}
    # githubkit loads with the first sweep (it costs start-up).
    from codeyard.github import app as app_api
    from codeyard.github.client import GitHubClient

    config = PrConfig.from_env()
    listed = redelivered = 0
    problems: list[str] = []
    for hook in hooks:
        where = f"hook {hook['hook_id']} of {hook['repo'] or 'the GitHub App'}"
        try:
            if hook["target"] == "integration" and key is not None:
                app_id, pem = key
                found = await app_api.hook_deliveries(config.github_api_url, app_id, pem)
            else:
                client = GitHubClient(config)
                found = await client.hook_deliveries(hook["repo"], int(hook["hook_id"]))
            listed += len(found)
            by_guid: dict[str, list[Any]] = {}
            for delivery in found:
                by_guid.setdefault(delivery.guid, []).append(delivery)
            async with svc.engine.connect() as conn:
                known = await store.known_ids(conn, list(by_guid))
            lost = [
                attempts[0]  # newest first: the latest attempt
                for guid, attempts in by_guid.items()
                if guid not in known and not any(a.ok for a in attempts)
            ]
            for delivery in lost[: MAX_REDELIVER - redelivered]:
                if hook["target"] == "integration" and key is not None:
                    await app_api.redeliver(config.github_api_url, key[0], key[1], delivery.id)
                else:
                    await client.redeliver(hook["repo"], int(hook["hook_id"]), delivery.id)
                redelivered += 1
            await svc.writer.run(_swept(hook["hook_id"]))
        except CodeyardError as exc:
            problems.append(f"{where}: {exc.detail}")
    return {"hooks": len(hooks), "listed": listed, "redelivered": redelivered, "problems": problems}


def _swept(hook_id: str) -> Callable[[Tx], Awaitable[None]]:
    async def job(tx: Tx) -> None:
        await store.mark_swept(tx, hook_id)

    return job


class Sweeper(LoopTask):
    """Runs :func:`sweep` every ``github_sweep_seconds``."""

    name = "codeyard-github-sweeper"

    def __init__(self, svc: Services) -> None:
        self.svc = svc

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.svc.settings.github_sweep_seconds)
            try:
                result = await sweep(self.svc)
            except Exception:  # the next sweep tries again
                log.exception("sweeping GitHub deliveries failed")
                continue
            for problem in result["problems"]:
                log.warning("GitHub sweep: %s", problem)
