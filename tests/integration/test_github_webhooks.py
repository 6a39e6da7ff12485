"""GitHub webhooks (issue 21) against a fake GitHub over real loopback HTTP: the fake signs and
sends deliveries to the real server (uvicorn in the test's loop), records each attempt, lists
them and redelivers them like GitHub's hook deliveries API."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from codeyard.config import Settings
from codeyard.github.poller import Poller, PrRef
from codeyard.github.signature import sign_body
from codeyard.services.github_poll import PollLoop, graphql_url
from tests.conftest import TOKEN, make_repo, running_api
from tests.support.fake_github import FakeGitHub
from tests.support.live_app import Live, serve
from tests.support.server import free_port
from tests.support.waits import eventually

pytestmark = pytest.mark.anyio
SECRET = "whsec-test-0123456789"
REPO = "acme/demo"


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout.strip()


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitHub]:
    with FakeGitHub("ghp_hooks") as server:
        monkeypatch.setenv("CODEYARD_GITHUB_TOKEN", "ghp_hooks")
        monkeypatch.setenv("CODEYARD_GITHUB_API_URL", server.api_url)
        monkeypatch.setenv("CODEYARD_GITHUB_WEB_URL", "https://github.com")
        yield server


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    settings = Settings(
        data_dir=tmp_path / "data",
        admin_token=TOKEN,
        port=free_port(),
        github_webhook_secret=SECRET,
        github_sweep_seconds=3600,
    )
    async with serve(settings) as server:
        yield server


def signed(
    body: dict[str, Any], delivery: str, event: str = "ping"
) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body).encode()
    headers = {
        "X-GitHub-Delivery": delivery,
        "X-GitHub-Event": event,
        "X-Hub-Signature-256": sign_body(SECRET, raw),
        "Content-Type": "application/json",
    }
    return raw, headers


async def test_a_bad_signature_is_403_and_nothing_is_stored(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", admin_token=TOKEN, github_webhook_secret=SECRET)
    async with running_api(settings) as api:
        raw, headers = signed({"zen": "hi"}, "d-1")
        forged = {**headers, "X-Hub-Signature-256": sign_body("not-the-secret", raw)}
        sha1 = {**headers, "X-Hub-Signature-256": "", "X-Hub-Signature": "sha1=00"}
        latin1: dict[str, str | bytes] = {**headers, "X-Hub-Signature-256": b"sha256=\xe9"}
        unsigned = {k: v for k, v in headers.items() if "Signature" not in k}
        for bad in (forged, sha1, latin1, unsigned):  # latin1 was a 500 (compare_digest on str)
            resp = await api.post("/api/github/webhooks", content=raw, headers=bad)
            assert resp.status_code == 403, resp.text
            assert "Nothing was stored" in resp.json()["detail"]
        tampered = await api.post(
            "/api/github/webhooks", content=raw.replace(b"hi", b"ho"), headers=headers
        )
        assert tampered.status_code == 403
        listed = (await api.get("/api/github/webhooks/events")).json()
        assert listed["data"] == []
        ok = await api.post("/api/github/webhooks", content=raw, headers=headers)
        assert ok.status_code == 202 and ok.json() == {"delivery_id": "d-1", "duplicate": False}


async def _run_with_pull_request(
    fake: FakeGitHub, tmp_path: Path, client: httpx.AsyncClient
) -> dict[str, Any]:
    """A run landed as a pull request: pushed to a real bare repository, opened on the fake."""
    bare = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    repo = make_repo(tmp_path / "demo")
    url = f"https://github.com/{REPO}.git"
    git(repo, "remote", "add", "origin", url)
    git(repo, "config", f"url.{bare}.pushInsteadOf", url)
    git(repo, "push", "-q", "origin", "main")
    fake.add_repo(REPO, bare)
    body = {
        "prompt": "Add a file",
        "repo_path": str(repo),
        "provider": "script",
        "agent_options": {"scenario": {"steps": [{"write": {"path": "f.txt", "content": "f"}}]}},
    }
    run = (await client.post("/api/runs", json=body)).json()

    async def in_review() -> bool:
        return (await client.get(f"/api/runs/{run['id']}")).json()["status"] == "review"

    assert await eventually(in_review, timeout=20)
    resp = await client.post(f"/api/runs/{run['id']}/resolve", json={"action": "create_pr"})
    assert resp.status_code == 200, resp.text
    result: dict[str, Any] = resp.json()
    return result


async def _pr_events(client: httpx.AsyncClient, run_id: str) -> list[dict[str, Any]]:
    resp = await client.get(f"/api/runs/{run_id}/events", params={"types": "pr.updated"})
    data: list[dict[str, Any]] = resp.json()["data"]
    return data


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="runs need the sandbox")
async def test_deliveries_reach_the_run_once_and_the_sweeper_recovers_a_lost_one(
    live: Live, fake: FakeGitHub, tmp_path: Path
) -> None:
    async with live.rest() as client:
        run = await _run_with_pull_request(fake, tmp_path, client)
        number = run["pull_request"]["number"]
        hook_id = await asyncio.to_thread(
            fake.add_hook, REPO, f"{live.url}/api/github/webhooks", SECRET
        )
        assert fake.deliveries[-1]["status_code"] == 202  # the ping

        pull = {"number": number, "state": "open", "merged": False, "head": {"sha": "abc123"}}
        codes = await asyncio.to_thread(
            fake.deliver, REPO, "pull_request", {"action": "synchronize", "pull_request": pull}
        )
        assert codes == [202]
        first = fake.deliveries[-1]
        assert await eventually(lambda: _count(client, run["id"], 1), timeout=30)
        assert await asyncio.to_thread(fake.resend, first["id"]) == 202  # a duplicate
        events = (await client.get("/api/github/webhooks/events")).json()["data"]
        assert [e["event"] for e in events] == ["pull_request", "ping"]
        assert all(e["processed_at"] for e in events)
        (shown,) = await _pr_events(client, run["id"])
        assert shown["data"]["summary"] == "pull request synchronize (open)"
        assert shown["data"]["delivery_id"] == first["guid"]

        # The server is unreachable while a check fails: GitHub records the failure, no retry.
        fake.hooks[hook_id].url = f"http://127.0.0.1:{free_port()}/api/github/webhooks"
        check = {
            "action": "completed",
            "check_run": {
                "name": "build",
                "status": "completed",
                "conclusion": "failure",
                "head_sha": "abc123",
                "pull_requests": [{"number": number}],
            },
        }
        assert await asyncio.to_thread(fake.deliver, REPO, "check_run", check) == [0]
        fake.hooks[hook_id].url = f"{live.url}/api/github/webhooks"
        swept = await client.post("/api/github/webhooks/sweep")
        assert swept.status_code == 200, swept.text
        assert swept.json() == {"hooks": 1, "listed": 4, "redelivered": 1, "problems": []}
        assert await eventually(lambda: _count(client, run["id"], 2), timeout=30)
        (_, recovered) = await _pr_events(client, run["id"])
        assert recovered["data"]["summary"] == "check run build completed: failure"
        again = (await client.post("/api/github/webhooks/sweep")).json()
        assert again["redelivered"] == 0  # it arrived: nothing left to recover
        assert len(await _pr_events(client, run["id"])) == 2


async def _count(client: httpx.AsyncClient, run_id: str, n: int) -> bool:
    return len(await _pr_events(client, run_id)) == n


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="runs need the sandbox")
async def test_merge_on_github_and_the_projects_pull_requests(
    fake: FakeGitHub, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "data", admin_token=TOKEN)
    async with running_api(settings) as api:
        run = await _run_with_pull_request(fake, tmp_path, api.client)
        number = run["pull_request"]["number"]
        listed = (await api.get(f"/api/projects/{run['project_id']}/pull-requests")).json()
        assert [(p["run_id"], p["number"]) for p in listed] == [(run["id"], number)]
        status = (await api.get(f"/api/runs/{run['id']}/pull-request")).json()
        assert status["mergeable"] is True and len(status["head_sha"]) == 40

        # Without webhooks the one poller records what changed on the run's timeline.
        loop = PollLoop(api.services)
        refs = await loop.refs()
        assert refs == [PrRef(run["id"], REPO, number)]
        fake.add_check_run(status["head_sha"], "build", "completed", "failure")
        async with httpx.AsyncClient(
            base_url=fake.api_url, headers={"Authorization": "Bearer ghp_hooks"}
        ) as client:
            assert await Poller(client, loop.budget, loop.report).cycle(refs) == 1
        polled = (
            await api.get(f"/api/runs/{run['id']}/events", params={"types": "pr.updated"})
        ).json()["data"]
        assert [e["data"]["event"] for e in polled] == ["poll"]
        assert "failing: build" in polled[0]["data"]["summary"]
        # The failing head is handed to the agent (the PR loop); its turn ends pushed, completed.

        async def fixed() -> bool:
            sent = await api.get(f"/api/runs/{run['id']}/events", params={"types": "git.pushed"})
            now = (await api.get(f"/api/runs/{run['id']}")).json()
            return len(sent.json()["data"]) == 2 and now["status"] == "completed"

        assert await eventually(fixed, timeout=60)
        status = (await api.get(f"/api/runs/{run['id']}/pull-request")).json()

        fake.update_pull(REPO, number, mergeable=False)
        refused = await api.post(f"/api/runs/{run['id']}/pull-request/merge", json={})
        assert refused.status_code == 409 and "will not merge" in refused.json()["detail"]
        fake.update_pull(REPO, number, mergeable=True)
        moved = await api.post(f"/api/runs/{run['id']}/pull-request/merge", json={"sha": "0" * 40})
        assert moved.status_code == 409 and "head moved" in moved.json()["detail"]
        assert fake.pull(REPO, number)["state"] == "open"  # nothing merged by the refusals

        merged = await api.post(
            f"/api/runs/{run['id']}/pull-request/merge", json={"method": "squash"}
        )
        assert merged.status_code == 200, merged.text
        assert merged.json()["state"] == "merged"
        assert fake.pull(REPO, number)["merge_method"] == "squash"
        again = await api.post(f"/api/runs/{run['id']}/pull-request/merge", json={})
        assert again.status_code == 409 and "is merged" in again.json()["detail"]
        stored = (await api.get(f"/api/runs/{run['id']}")).json()["pull_request"]
        assert stored["state"] == "merged"  # the run takes no more turns
        refused = await api.post(f"/api/runs/{run['id']}/messages", json={"text": "more"})
        assert refused.status_code == 409
        events = (
            await api.get(f"/api/runs/{run['id']}/events", params={"types": "pr.merged"})
        ).json()["data"]
        assert [e["data"]["method"] for e in events] == ["squash"]


def test_graphql_lives_next_to_the_rest_api() -> None:
    assert graphql_url("https://api.github.com") == "https://api.github.com/graphql"
    assert graphql_url("https://ghe.example.com/api/v3/") == "https://ghe.example.com/api/graphql"


async def test_platform_status_and_detect_remote(
    fake: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("CODEYARD_GITLAB_URL", "CODEYARD_GITLAB_TOKEN", "CODEYARD_GITEA_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(data_dir=tmp_path / "data", admin_token=TOKEN, github_webhook_secret=SECRET)
    async with running_api(settings) as api:
        status, gitlab = (await api.get("/api/platforms/status")).json()  # no Gitea URL set
        assert gitlab["platform"] == "gitlab" and gitlab["web_host"] == "gitlab.com"
        assert gitlab["connected_via"] is None
        assert gitlab["problems"][0].startswith("gitlab: No GitLab token configured")
        assert status["platform"] == "github" and status["connected_via"] == "github"
        assert status["webhook_secret_configured"] is True and status["polling"] is False
        assert status["api_url"] == fake.api_url

        repo = make_repo(tmp_path / "app")
        git(repo, "remote", "add", "origin", "https://octo:s3cret@github.com/acme/demo.git")
        found = (await api.post("/api/github/detect-remote", json={"path": str(repo)})).json()
        assert found == {
            "remote": "https://github.com/acme/demo.git",
            "host": "github.com",
            "repository": "acme/demo",
            "platform": "github",
            "pull_requests_via": "github",
            "problem": None,
        }
        other = make_repo(tmp_path / "other")
        git(other, "remote", "add", "origin", "git@git.example.org:team/tool.git")
        elsewhere = (await api.post("/api/github/detect-remote", json={"path": str(other)})).json()
        assert elsewhere["platform"] is None and "no configured forge" in elsewhere["problem"]
        git(other, "remote", "set-url", "origin", "git@gitlab.com:team/tool.git")
        gitlab = (await api.post("/api/github/detect-remote", json={"path": str(other)})).json()
        assert gitlab["platform"] == "gitlab" and gitlab["pull_requests_via"] is None
        assert "set CODEYARD_GITLAB_TOKEN" in gitlab["problem"]
        missing = await api.post("/api/github/detect-remote", json={"path": str(tmp_path / "no")})
        assert missing.status_code == 400 and "not a directory" in missing.json()["detail"]
        no_origin = await api.post(
            "/api/github/detect-remote", json={"path": str(make_repo(tmp_path / "bare"))}
        )
        assert no_origin.status_code == 400 and "remote add origin" in no_origin.json()["detail"]
