"""The one pull-request poller (issue 21) against the fake GitHub over loopback HTTP: ETag'd
repository lists, batched GraphQL, a request budget and a pause when GitHub's quota runs low."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from codeyard.github.poller import Budget, Poller, PrRef, PrSnapshot
from tests.support.fake_github import FakeGitHub

pytestmark = pytest.mark.anyio
TOKEN = "ghp_poll"


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub(TOKEN) as server:
        yield server


def open_pulls(fake: FakeGitHub, repo: str, count: int) -> list[dict[str, object]]:
    fake.add_repo(repo)
    out = []
    with httpx.Client(base_url=fake.api_url, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        for i in range(count):
            body = {"title": f"PR {i}", "head": f"codeyard/{i}-{repo}", "base": "main"}
            resp = c.post(f"/repos/{repo}/pulls", json=body)
            assert resp.status_code == 201, resp.text
            out.append(resp.json())
    return out


def charged(fake: FakeGitHub) -> int:
    """Requests GitHub would count: everything but the list requests answered 304."""
    return sum(1 for r in fake.requests if r.method == "POST" and r.path == "/graphql") + sum(
        1 for r in fake.requests if r.method == "GET" and "if-none-match" not in r.headers
    )


async def test_one_poller_batches_skips_settled_prs_and_respects_the_budget(
    fake: FakeGitHub,
) -> None:
    pulls = open_pulls(fake, "acme/api", 20) + open_pulls(fake, "acme/web", 10)
    repos = ["acme/api"] * 20 + ["acme/web"] * 10
    refs = [
        PrRef(f"run_{p['number']}", r, int(str(p["number"])))
        for p, r in zip(pulls, repos, strict=True)
    ]
    for p in pulls:
        fake.add_check_run(p["head"]["sha"], "tests", "completed", "success")  # type: ignore[index]
    busy = pulls[3]["head"]["sha"]  # type: ignore[index]
    fake.add_check_run(busy, "lint", "in_progress")
    seen: list[tuple[PrRef, PrSnapshot]] = []

    async def report(ref: PrRef, snap: PrSnapshot) -> None:
        seen.append((ref, snap))

    budget = Budget(per_hour=1000)
    async with httpx.AsyncClient(
        base_url=fake.api_url, headers={"Authorization": f"Bearer {TOKEN}"}
    ) as client:
        poller = Poller(client, budget, report)
        assert poller.cost(refs) == 2 + 2  # two repository lists, two batches of ≤ 25
        assert poller.interval(refs) == 30.0  # the floor: 4 requests a cycle fit 1,000/h
        assert Budget(per_hour=100).interval(4, 30.0) == 144.0  # a smaller budget stretches it

        assert await poller.cycle(refs) == 30
        queries = [r for r in fake.requests if r.path == "/graphql"]
        assert len(queries) == 2  # 30 pull requests in two aliased queries
        assert len(seen) == 30 and seen[3][1].rollup == "PENDING"

        fake.requests.clear()
        assert await poller.cycle(refs) == 0  # nothing moved
        lists = [r for r in fake.requests if r.path.endswith("/pulls")]
        assert len(lists) == 2 and all("if-none-match" in r.headers for r in lists)
        assert [
            len(r.json["query"].split("pullRequest(")) - 1
            for r in fake.requests
            if r.path == "/graphql"
        ] == [1]  # only the one still running

        fake._runs_by_sha[busy][-1].update(status="completed", conclusion="failure")
        assert await poller.cycle(refs) == 1
        ref, snap = seen[-1]
        assert ref == refs[3] and snap.rollup == "FAILURE" and "failing: lint" in snap.summary()
        assert budget.used_last_hour() == charged_total(budget)

        fake.rate = {"limit": 5000, "remaining": 1000, "reset": int(time.time()) + 600}
        fake.requests.clear()
        await poller.cycle(refs)  # GitHub's quota is under the 40 % reserve: pause until reset
        made = len(fake.requests)
        assert await poller.cycle(refs) == 0 and poller.skipped == 1
        assert len(fake.requests) == made  # the paused cycle sent nothing


def charged_total(budget: Budget) -> int:
    return len(budget.spent)
