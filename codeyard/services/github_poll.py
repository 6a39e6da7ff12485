"""GitHub without webhooks (issue 21): one poller for every run's pull request.

Apart from the webhooks (``services.github``): they are the other way in, and a server polls
only when it has none (:func:`should_poll`). A changed pull request is recorded as
``pr.updated`` (``event: poll``) on its run and told to the pull-request loop as the webhook
would have told it. httpx loads when polling starts, not at the server's start-up (issue 15).
"""

from __future__ import annotations

import asyncio
import logging

from codeyard.config import Settings
from codeyard.domain import events as ev
from codeyard.github.feedback import Signal, is_bot, pull_repo
from codeyard.github.poller import Budget, Poller, PrRef, PrSnapshot
from codeyard.github.pr_api import PrFeedbackApi
from codeyard.prs.base import PrConfig
from codeyard.services import pr_loop
from codeyard.services.context import Services
from codeyard.services.loop_task import LoopTask
from codeyard.store import github as store

__all__ = ["PollLoop", "graphql_url", "should_poll"]

log = logging.getLogger(__name__)


def should_poll(settings: Settings) -> bool:
    """Poll only without webhooks, with a budget, and with a token to poll with."""
    has_token = PrConfig.from_env().github_token is not None
    return (
        settings.github_poll_budget_per_hour > 0
        and not settings.github_webhook_secret
        and has_token
    )


class PollLoop(LoopTask):
    """Without webhooks: the one :class:`~codeyard.github.poller.Poller` for every run's pull
    request, its changes recorded as ``pr.updated`` (``event: poll``) on the run."""

    name = "codeyard-github-poller"

    def __init__(self, svc: Services) -> None:
        self.svc = svc
        self.budget = Budget(per_hour=svc.settings.github_poll_budget_per_hour)
        self._done: set[tuple[str, int]] = set()  # merged or closed: not polled again
        #: The base tip each pull request was last seen on; a new one (or the first sight,
        #: which covers a move while the server was down) is a base move.
        self._bases: dict[tuple[str, int], str] = {}

    async def refs(self) -> list[PrRef]:
        async with self.svc.engine.connect() as conn:
            held = await store.runs_with_pull_requests(conn)
        out = []
        for run in held:
            first = run["pull_request"]
            if not isinstance(first, dict):  # a JSON null is stored as 'null', not SQL NULL
                continue
            for pull in [first, *(first.get("others") or [])]:
                repo = pull_repo(pull)
                if repo and (repo, int(pull["number"])) not in self._done:
                    out.append(PrRef(run["id"], repo, int(pull["number"])))
        return out

    async def report(self, ref: PrRef, snap: PrSnapshot) -> None:
        if snap.state in ("MERGED", "CLOSED"):
            self._done.add((ref.repo, ref.number))
        event = ev.PrUpdated(
            repo=ref.repo,
            number=ref.number,
            event="poll",
            action=None,
            delivery_id="poll",
            summary=snap.summary(),
            head_sha=snap.head_sha,
        )
        await self.svc.writer.append(ref.run_id, [event])
        for signal in await self._signals(ref, snap):
            await pr_loop.handle(self.svc, ref.run_id, ref.repo, ref.number, signal)

    async def _signals(self, ref: PrRef, snap: PrSnapshot) -> list[Signal]:
        """What a changed snapshot means for the pull-request loop (as webhooks would say)."""
        if snap.state in ("MERGED", "CLOSED"):
            return [Signal("pr_state", state=snap.state.lower())]
        out = []
        if snap.head_sha and snap.rollup in ("FAILURE", "ERROR"):
            out.append(Signal("ci_failed", sha=snap.head_sha))
        if snap.review_decision == "CHANGES_REQUESTED":
            config = PrConfig.from_env()
            review = await PrFeedbackApi(config).latest_change_request(ref.repo, ref.number)
            if review is not None and not is_bot(review.get("user")):
                out.append(Signal("changes_requested", review=review))
        key = (ref.repo, ref.number)
        if snap.base_ref and snap.base_sha and self._bases.get(key) != snap.base_sha:
            self._bases[key] = snap.base_sha
            # Last: a fix turn started above rebases when it pushes. An idle run branch is
            # rebased only when it no longer contains the base (a fetch decides), so the first
            # sight after a restart costs a fetch and moves nothing.
            out.append(Signal("base_moved", sha=snap.base_sha, branch=snap.base_ref))
        return out

    async def _loop(self) -> None:
        config = PrConfig.from_env()
        headers = {
            "Authorization": f"Bearer {config.github_token}",
            "Accept": "application/vnd.github+json",
            "User-Agent": "codeyard",
        }
        import httpx

        async with httpx.AsyncClient(
            base_url=config.github_api_url.rstrip("/"), headers=headers, timeout=30
        ) as client:
            graphql = graphql_url(config.github_api_url)
            poller = Poller(client, self.budget, self.report, graphql_url=graphql)
            while True:
                refs: list[PrRef] = []
                try:
                    refs = await self.refs()
                    await poller.cycle(refs)
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    log.warning("polling GitHub pull requests failed: %s", exc)
                except Exception:  # a background loop: one bad row must not end polling
                    log.exception("polling GitHub pull requests failed")
                await asyncio.sleep(poller.interval(refs))


def graphql_url(api_url: str) -> str:
    """github.com: ``https://api.github.com/graphql``; Enterprise: ``https://HOST/api/graphql``
    (next to the REST base ``https://HOST/api/v3``)."""
    base = api_url.rstrip("/")
    return base.removesuffix("/v3") + "/graphql" if base.endswith("/api/v3") else base + "/graphql"
