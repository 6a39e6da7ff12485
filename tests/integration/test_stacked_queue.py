"""Stacked pull requests from a work queue (issue 19, ``land = stack``): nothing is merged;
each ticket's run starts from the previous ticket's branch and its pull request is based on
that branch. Real git and the script provider; GitHub cannot be reached from here, so a fake
GitHub on loopback plays its REST API and pushes go to a real bare repository."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import Api
from tests.integration.test_ticket_work import assign, profile, show, wait_for
from tests.integration.test_tickets import make_project, ticket
from tests.support.fake_github import FakeGitHub

pytestmark = pytest.mark.anyio


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True)
    return done.stdout.strip()


async def test_a_stacked_queue_opens_one_pr_per_ticket_on_the_previous_branch(
    sqlite_api: Api, git_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = sqlite_api
    bare = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    url = "https://github.com/acme/shop.git"
    git(git_repo, "remote", "add", "origin", url)
    git(git_repo, "config", f"url.{bare}.pushInsteadOf", url)
    git(git_repo, "push", "-q", "origin", "main")
    await make_project(api, git_repo)
    # Only a run started from the previous ticket's (unmerged) branch finds its file.
    steps = {
        1: [{"write": {"path": "a.txt", "content": "from one\n"}}],
        2: [{"bash": "cat a.txt > b.txt"}],
        3: [{"bash": "cat b.txt > c.txt"}],
    }
    for n, scenario in steps.items():
        await ticket(api, "shop", title=f"Step {n}")
        await assign(api, n, await profile(api, f"agent {n}", *scenario))

    parallel = await api.post(
        "/api/projects/shop/discover/queues",
        json={"name": "wide", "tickets": [1, 2], "land": "stack", "max_parallel": 2},
    )
    assert parallel.status_code == 422 and "max_parallel" in parallel.json()["detail"]

    with FakeGitHub("ghp_test") as fake:
        fake.add_repo("acme/shop", bare)
        monkeypatch.setenv("CODEYARD_GITHUB_TOKEN", "ghp_test")
        monkeypatch.setenv("CODEYARD_GITHUB_API_URL", fake.api_url)
        monkeypatch.setenv("CODEYARD_GITHUB_WEB_URL", "https://github.com")
        made = await api.post(
            "/api/projects/shop/discover/queues",
            json={"name": "stack", "tickets": [1, 2, 3], "land": "stack"},
        )
        assert made.status_code == 201, made.text
        assert made.json()["land"] == "stack"
        base = f"/api/projects/shop/discover/queues/{made.json()['id']}"
        assert (await api.post(f"{base}/start")).status_code == 200
        finished = await wait_for(api, base, "status", "done", "paused", timeout=60)
        assert finished["status"] == "done", finished
        assert [i["state"] for i in finished["items"]] == ["done"] * 3
        opened = [r.json for r in fake.requests if r.method == "POST" and "/pulls" in r.path]

    branches = []
    for item in finished["items"]:
        run = (await api.get(f"/api/runs/{item['run_id']}")).json()
        assert run["resolution"] == "pr_created", run
        branches.append(run["branch"])
    assert [(p["head"], p["base"]) for p in opened] == [
        (branches[0], "main"),
        (branches[1], branches[0]),
        (branches[2], branches[1]),
    ]
    # Each branch holds its ticket's work on top of the previous one; nothing reached main.
    assert show(git_repo, f"{branches[2]}:c.txt") == "from one\n"
    assert git(bare, "rev-parse", f"{branches[1]}~1") == git(bare, "rev-parse", branches[0])
    assert show(git_repo, "main:a.txt").startswith("<missing")
