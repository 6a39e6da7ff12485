"""GitHub without webhooks and with them (issue 21): API requests per hour for 50 open pull
requests polled, and webhook delivery → run event latency.

Polling: the fake GitHub (tests/support/fake_github.py, real loopback HTTP) holds 50 open pull
requests in 5 repositories with CI on each head. One simulated hour of the one poller runs on a
simulated clock (its requests are real): every 10 minutes 5 pull requests get a new head whose
checks run for one cycle and then finish (one in five failing). Counted: the requests GitHub
would charge (everything but 304 answers), and how long after a change the poller saw it.

Webhooks: the real app under Uvicorn (in this process), a run landed as a pull request (real
git, the script agent, pushed to a bare repository), the fake GitHub's hook posting signed
``pull_request`` deliveries one after another; latency = the delivery's send → the
``pr.updated`` event published on the hub (stored and committed before publishing).

``python bench/github_poll.py`` writes bench/out/github_poll.json and prints a summary.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench._common import OUT, free_port, machine, write_json
from bench._stats import percentiles
from codeyard.config import Settings
from codeyard.events.hub import EventFilter
from codeyard.github.poller import FULL_EVERY, Budget, Poller, PrRef, PrSnapshot
from tests.support.fake_github import FakeGitHub

TOKEN = "ghp_bench"
SECRET = "bench-secret"


def poll_hour(budget_per_hour: int = 1000) -> dict[str, Any]:
    with FakeGitHub(TOKEN) as fake:
        return asyncio.run(_poll_hour(fake, _open_pulls(fake), budget_per_hour))


def _open_pulls(fake: FakeGitHub) -> list[PrRef]:
    refs: list[PrRef] = []
    with httpx.Client(base_url=fake.api_url, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        for r in range(5):
            repo = f"acme/svc{r}"
            fake.add_repo(repo)
            for i in range(10):
                body = {"title": f"PR {i}", "head": f"codeyard/{r}-{i}", "base": "main"}
                pull = c.post(f"/repos/{repo}/pulls", json=body).json()
                refs.append(PrRef(f"run_{pull['number']}", repo, pull["number"]))
                fake.add_check_run(pull["head"]["sha"], "tests", "completed", "success")
    return refs


async def _poll_hour(fake: FakeGitHub, refs: list[PrRef], per_hour: int) -> dict[str, Any]:
    now = [0.0]
    budget = Budget(per_hour=per_hour, clock=lambda: now[0], wall=lambda: 0.0)
    changed_at: dict[tuple[str, int, str], float] = {}
    seen_after: list[float] = []

    async def report(ref: PrRef, snap: PrSnapshot) -> None:
        key = (ref.repo, ref.number, f"{snap.head_sha}:{snap.rollup}")
        if key in changed_at:
            seen_after.append(now[0] - changed_at.pop(key))

    async with httpx.AsyncClient(
        base_url=fake.api_url, headers={"Authorization": f"Bearer {TOKEN}"}
    ) as client:
        poller = Poller(client, budget, report)
        await poller.cycle(refs)  # the first look at everything (not counted below)
        fake.requests.clear()
        budget.spent.clear()
        interval = poller.interval(refs)
        pending: list[tuple[PrRef, str]] = []
        cycles = 0
        push = 0
        while now[0] + interval <= 3600:
            now[0] += interval
            cycles += 1
            for ref, sha in pending:  # last cycle's new heads: CI finishes
                run = fake._runs_by_sha[sha][-1]
                failed = ref.number % 5 == 0
                run.update(status="completed", conclusion="failure" if failed else "success")
                changed_at[
                    (ref.repo, ref.number, f"{sha}:{'FAILURE' if failed else 'SUCCESS'}")
                ] = now[0]
            pending = []
            if now[0] % 600 < interval:  # every 10 minutes: 5 pushes
                for ref in refs[push * 5 : push * 5 + 5]:
                    sha = hashlib.sha1(f"{ref.number}-{now[0]}".encode()).hexdigest()
                    fake.update_pull(
                        ref.repo, ref.number, head={"ref": "x", "sha": sha}, updated_at=str(now[0])
                    )
                    fake.add_check_run(sha, "tests", "in_progress")
                    changed_at[(ref.repo, ref.number, f"{sha}:PENDING")] = now[0] - interval + 1
                    pending.append((ref, sha))
                push += 1
            await poller.cycle(refs)
        # Charged = answered with something other than 304 (what the budget counted).
        not_modified = len(fake.requests) - len(budget.spent)
    return {
        "prs": len(refs),
        "repos": 5,
        "budget_per_hour": per_hour,
        "interval_s": interval,
        "cycles": cycles,
        "requests_charged_per_hour": len(budget.spent),
        "requests_sent_per_hour": len(fake.requests),
        "conditional_requests_sent": len(
            [r for r in fake.requests if r.headers.get("if-none-match")]
        ),
        "graphql_queries": sum(1 for r in fake.requests if r.path == "/graphql"),
        "worst_case_cost_per_cycle": poller.cost(refs),
        "worst_case_per_hour": poller.cost(refs) * int(3600 / interval),
        "changes": len(seen_after) + len(changed_at),
        "changes_seen": len(seen_after),
        "freshness_max_s": max(seen_after) if seen_after else None,
        "full_refresh_every_s": FULL_EVERY * interval,
        "not_modified_answers": not_modified,
    }


def webhook_latency(deliveries: int = 200) -> dict[str, Any]:
    with FakeGitHub(TOKEN) as fake:
        os.environ["CODEYARD_GITHUB_TOKEN"] = TOKEN
        os.environ["CODEYARD_GITHUB_API_URL"] = fake.api_url
        os.environ["CODEYARD_GITHUB_WEB_URL"] = "https://github.com"
        return asyncio.run(_webhook_latency(fake, deliveries))


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def _origin(fake: FakeGitHub) -> Path:
    """A work tree whose origin (github.com/acme/demo) pushes to a real bare repository."""
    tmp = Path(tempfile.mkdtemp(prefix="bench-gh-"))
    bare = tmp / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    repo = tmp / "demo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("# demo\n")
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=b", "-c", "user.email=b@x", "commit", "-qm", "init")
    url = "https://github.com/acme/demo.git"
    _git(repo, "remote", "add", "origin", url)
    _git(repo, "config", f"url.{bare}.pushInsteadOf", url)
    _git(repo, "push", "-q", "origin", "main")
    fake.add_repo("acme/demo", bare)
    return tmp


async def _webhook_latency(fake: FakeGitHub, count: int) -> dict[str, Any]:
    from tests.support.live_app import serve  # the app under Uvicorn in this loop

    tmp = await asyncio.to_thread(_origin, fake)
    try:
        repo = tmp / "demo"
        settings = Settings(
            data_dir=tmp / "data",
            admin_token="cy_bench",
            port=free_port(),
            github_webhook_secret=SECRET,
        )
        async with serve(settings) as live:
            async with live.rest("cy_bench") as client:
                body = {
                    "prompt": "x",
                    "repo_path": str(repo),
                    "provider": "script",
                    "agent_options": {
                        "scenario": {"steps": [{"write": {"path": "f", "content": "f"}}]}
                    },
                }
                run = (await client.post("/api/runs", json=body)).json()
                for _ in range(400):
                    if (await client.get(f"/api/runs/{run['id']}")).json()["status"] == "review":
                        break
                    await asyncio.sleep(0.05)
                landed = await client.post(
                    f"/api/runs/{run['id']}/resolve", json={"action": "create_pr"}
                )
                number = landed.json()["pull_request"]["number"]
            await asyncio.to_thread(
                fake.add_hook, "acme/demo", f"{live.url}/api/github/webhooks", SECRET
            )
            hub = live.app.state.services.hub
            sub = hub.subscribe(EventFilter(run_id=run["id"], types=frozenset({"pr.updated"})))
            latencies = []
            pull = {"number": number, "state": "open", "head": {"sha": "a" * 40}}
            for i in range(count):
                payload = {"action": "synchronize", "pull_request": pull, "n": i}
                sent = time.perf_counter()
                delivering = asyncio.create_task(
                    asyncio.to_thread(fake.deliver, "acme/demo", "pull_request", payload)
                )
                await asyncio.wait_for(sub.next_batch(), timeout=10)
                latencies.append((time.perf_counter() - sent) * 1000)
                await delivering
            sub.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    ordered = sorted(latencies)
    return {
        "deliveries": count,
        **percentiles(ordered, (50, 90, 99), 2),
    }


def main() -> None:
    result = {"machine": machine(), "poll": poll_hour(), "webhook": webhook_latency()}
    write_json(OUT / "github_poll.json", result)
    poll, hook = result["poll"], result["webhook"]
    print(
        f"poll: {poll['prs']} PRs, interval {poll['interval_s']:.0f}s, "
        f"{poll['requests_charged_per_hour']} charged requests/h "
        f"({poll['requests_sent_per_hour']} sent, worst case {poll['worst_case_per_hour']}/h), "
        f"{poll['changes_seen']}/{poll['changes']} changes seen, max {poll['freshness_max_s']}s"
    )
    print(
        f"webhook -> run event: p50 {hook['p50_ms']} ms, p99 {hook['p99_ms']} ms, "
        f"max {hook['max_ms']} ms"
    )


if __name__ == "__main__":
    main()
