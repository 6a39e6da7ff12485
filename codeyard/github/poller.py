"""Pull request status without webhooks: one poller for every open pull request, under a hard
request budget (issue 21).

Peers' users hit GitHub's limits with a handful of sessions because each session polled on its
own (several GraphQL calls per PR every 30 s). Here one :class:`Poller` serves them all:

* per repository, a conditional ``GET /repos/{o}/{r}/pulls?state=open`` with the last ETag:
  a ``304 Not Modified`` costs nothing against the rate limit, and says no pull request of the
  repository moved, so only those still settling (checks running, mergeability unknown) are
  read further (all of them every :data:`FULL_EVERY` cycles);
* the state of the pull requests themselves (state, mergeability, review decision, head SHA,
  the check rollup of the head commit, and the base branch's tip, so a base move is seen without
  a ``push`` webhook) in **batched GraphQL**: up to 25 pull requests per query, as aliases;
* a :class:`Budget`: requests per hour Codeyard may spend (default 1,000 of GitHub's 5,000, the
  rest kept for the user's own ``gh`` and tools); the interval between cycles stretches so a
  cycle's cost fits the budget, and when GitHub's remaining quota falls under the reserve the
  poller pauses until the reset time GitHub announced.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    # httpx (with the Rich and Click it imports) loads on first use, not at the server's
    # start-up (issue 15).
    import httpx


__all__ = ["BATCH", "FULL_EVERY", "Budget", "Poller", "PrRef", "PrSnapshot"]

#: Pull requests per GraphQL query (aliases); GitHub's node limits allow far more, but large
#: queries time out under load, and peers settled on 25.
BATCH = 25
#: Every this many cycles, settled pull requests of unchanged repositories are read too (a
#: re-run check on the same head changes nothing a conditional list request would see).
FULL_EVERY = 10
_FIELDS = (
    "number state isDraft mergeable reviewDecision headRefOid baseRefName "
    "baseRef { target { oid } } "
    "commits(last: 1) { nodes { commit { statusCheckRollup { state contexts(first: 50) "
    "{ nodes { __typename ... on CheckRun { name status conclusion detailsUrl } "
    "... on StatusContext { context state targetUrl } } } } } } }"
)


@dataclass(frozen=True, slots=True)
class PrRef:
    run_id: str
    repo: str  # owner/name
    number: int


@dataclass(frozen=True, slots=True)
class PrSnapshot:
    state: str
    mergeable: str | None
    review_decision: str | None
    head_sha: str | None
    rollup: str | None
    checks: tuple[tuple[str, str, str | None], ...]
    #: The base branch and its tip now (``baseRef.target``, not the base the pull request was
    #: opened on): a new tip is a base move, seen without a ``push`` webhook.
    base_ref: str | None = None
    base_sha: str | None = None

    def summary(self) -> str:
        failing = [n for n, _s, c in self.checks if c in ("FAILURE", "ERROR", "TIMED_OUT")]
        parts = [f"state {self.state.lower()}", f"checks {(self.rollup or 'none').lower()}"]
        if failing:
            parts.append("failing: " + ", ".join(failing))
        if self.review_decision:
            parts.append(f"review {self.review_decision.lower()}")
        return "; ".join(parts)


@dataclass
class Budget:
    """Requests per hour this server may spend, and GitHub's own quota as last reported."""

    per_hour: int = 1000
    #: Share of GitHub's quota never touched (the user's own tools need it).
    reserve: float = 0.4
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    spent: deque[float] = field(default_factory=deque)
    paused_until: float = 0.0  # wall-clock seconds

    def record(self, response: httpx.Response) -> None:
        """Count a request GitHub charges for (not a 304) and read its rate-limit headers."""
        if response.status_code != 304:
            self.spent.append(self.clock())
        limit = response.headers.get("x-ratelimit-limit")
        remaining = response.headers.get("x-ratelimit-remaining")
        reset = response.headers.get("x-ratelimit-reset")
        if limit and remaining and reset and int(remaining) < int(limit) * self.reserve:
            self.paused_until = max(self.paused_until, float(reset))

    def used_last_hour(self) -> int:
        horizon = self.clock() - 3600
        while self.spent and self.spent[0] < horizon:
            self.spent.popleft()
        return len(self.spent)

    def interval(self, cost: int, floor: float) -> float:
        """Seconds between cycles of ``cost`` requests so an hour stays within the budget."""
        if cost <= 0:
            return floor
        return max(floor, 3600.0 * cost / self.per_hour)

    def allows(self, cost: int) -> bool:
        if self.wall() < self.paused_until:
            return False
        return self.used_last_hour() + cost <= self.per_hour


Report = Callable[[PrRef, PrSnapshot], Awaitable[None]]


class Poller:
    """``await poller.cycle(prs)`` once per :meth:`interval`; changes go to ``report``."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        budget: Budget,
        report: Report,
        *,
        floor_seconds: float = 30.0,
        graphql_url: str = "/graphql",
    ) -> None:
        self.graphql_url = graphql_url  # absolute on Enterprise (``/api/graphql``)
        self.client = client  # base_url: the API (…/api/v3 on Enterprise), auth headers set
        self.budget = budget
        self.report = report
        self.floor = floor_seconds
        self.etags: dict[str, str] = {}
        self.known: dict[tuple[str, int], PrSnapshot] = {}
        self.skipped = 0
        self.cycles = 0

    def _unsettled(self, ref: PrRef) -> bool:
        """Not known yet, checks still running, or mergeability still being computed."""
        snap = self.known.get((ref.repo, ref.number))
        if snap is None:
            return True
        return snap.rollup in (None, "PENDING", "EXPECTED") or snap.mergeable == "UNKNOWN"

    def cost(self, prs: Sequence[PrRef]) -> int:
        """Requests a cycle may be charged for: one list per repository, one query per batch."""
        return len({p.repo for p in prs}) + math.ceil(len(prs) / BATCH)

    def interval(self, prs: Sequence[PrRef]) -> float:
        return self.budget.interval(self.cost(prs), self.floor)

    async def cycle(self, prs: Sequence[PrRef]) -> int:
        """Poll once; the number of pull requests whose snapshot changed (0 when the budget or
        a pause said no: ``skipped`` counts those)."""
        if not prs:
            return 0
        if not self.budget.allows(self.cost(prs)):
            self.skipped += 1
            return 0
        changed_repos = set()
        for repo in sorted({p.repo for p in prs}):
            if await self._list_changed(repo):
                changed_repos.add(repo)
        self.cycles += 1
        full = self.cycles % FULL_EVERY == 1
        wanted = [p for p in prs if full or p.repo in changed_repos or self._unsettled(p)]
        changed = 0
        for start in range(0, len(wanted), BATCH):
            batch = list(wanted[start : start + BATCH])
            for ref, snap in zip(batch, await self._query(batch), strict=True):
                key = (ref.repo, ref.number)
                if snap is not None and self.known.get(key) != snap:
                    self.known[key] = snap
                    changed += 1
                    await self.report(ref, snap)
        return changed

    async def _list_changed(self, repo: str) -> bool:
        headers = {"If-None-Match": self.etags[repo]} if repo in self.etags else {}
        response = await self.client.get(
            f"/repos/{repo}/pulls", params={"state": "open", "per_page": 100}, headers=headers
        )
        self.budget.record(response)
        if response.status_code == 304:
            return False
        response.raise_for_status()
        if etag := response.headers.get("etag"):
            self.etags[repo] = etag
        return True

    async def _query(self, batch: list[PrRef]) -> list[PrSnapshot | None]:
        by_repo: dict[str, list[tuple[int, PrRef]]] = {}
        for i, ref in enumerate(batch):
            by_repo.setdefault(ref.repo, []).append((i, ref))
        parts = []
        for r, (repo, items) in enumerate(by_repo.items()):
            owner, name = repo.split("/", 1)
            pulls = " ".join(
                f"p{i}: pullRequest(number: {ref.number}) {{ {_FIELDS} }}" for i, ref in items
            )
            parts.append(f'r{r}: repository(owner: "{owner}", name: "{name}") {{ {pulls} }}')
        query = "query { " + " ".join(parts) + " }"
        response = await self.client.post(self.graphql_url, json={"query": query})
        self.budget.record(response)
        response.raise_for_status()
        data = (response.json() or {}).get("data") or {}
        out: list[PrSnapshot | None] = [None] * len(batch)
        for r, (_repo, items) in enumerate(by_repo.items()):
            node = data.get(f"r{r}") or {}
            for i, _ref in items:
                out[i] = _snapshot(node.get(f"p{i}"))
        return out


def _snapshot(pull: dict[str, Any] | None) -> PrSnapshot | None:
    if not pull:
        return None
    commits = ((pull.get("commits") or {}).get("nodes") or [{}])[-1] or {}
    rollup = ((commits.get("commit") or {}).get("statusCheckRollup")) or {}
    checks = []
    for node in (rollup.get("contexts") or {}).get("nodes") or []:
        if node.get("__typename") == "StatusContext":
            checks.append((str(node.get("context")), "COMPLETED", node.get("state")))
        else:
            checks.append((str(node.get("name")), str(node.get("status")), node.get("conclusion")))
    return PrSnapshot(
        state=str(pull.get("state")),
        mergeable=pull.get("mergeable"),
        review_decision=pull.get("reviewDecision"),
        head_sha=pull.get("headRefOid"),
        rollup=rollup.get("state"),
        checks=tuple(checks),
        base_ref=pull.get("baseRefName"),
        base_sha=((pull.get("baseRef") or {}).get("target") or {}).get("oid"),
    )
