"""Review comments synced from GitHub (issue 21) in the run view, in Debian's Chromium against a
real ``codeyard serve`` and the fake GitHub over loopback HTTP: a "changes requested" review
becomes ``pr.review_comment`` events shown at their file and line in the transcript, and the
composer of the completed run stays open while its pull request is.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, expect

from codeyard.github.signature import sign_body
from tests.conftest import make_repo
from tests.support.fake_github import FakeGitHub
from tests.support.server import ServerProcess

SECRET = "whsec-ui-0123456789"
REPO = "acme/ui-loop"


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub("ghp_ui") as server:
        yield server


@pytest.fixture
def gh_server(tmp_path: Path, fake: FakeGitHub) -> Iterator[ServerProcess]:
    env = {
        "CODEYARD_GITHUB_TOKEN": "ghp_ui",
        "CODEYARD_GITHUB_API_URL": fake.api_url,
        "CODEYARD_GITHUB_WEB_URL": "https://github.com",
        "CODEYARD_GITHUB_WEBHOOK_SECRET": SECRET,
    }
    srv = ServerProcess(tmp_path / "data", env=env)
    try:
        srv.start(timeout=120)
        yield srv
    finally:
        srv.stop()


def _wait(client: httpx.Client, run_id: str, status: str, pushes: int = 0) -> dict[str, Any]:
    deadline = time.monotonic() + 90
    while True:
        run: dict[str, Any] = client.get(f"/api/runs/{run_id}").json()
        pushed = client.get(f"/api/runs/{run_id}/events", params={"types": "git.pushed"})
        if run["status"] == status and len(pushed.json()["data"]) >= pushes:
            return run
        assert time.monotonic() < deadline, run
        time.sleep(0.2)


@pytest.mark.slow  # a real server, two agent turns and a browser: 20-90 s by load
def test_review_comments_show_in_the_run_view(
    browser: Browser, gh_server: ServerProcess, fake: FakeGitHub, tmp_path: Path
) -> None:
    bare = tmp_path / "origin.git"
    subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True)
    repo = make_repo(tmp_path / "app")
    url = f"https://github.com/{REPO}.git"
    for args in (
        ["remote", "add", "origin", url],
        ["config", f"url.{bare}.pushInsteadOf", url],
        ["push", "-q", "origin", "main"],
    ):
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)
    fake.add_repo(REPO, bare)
    headers = {"Authorization": f"Bearer {gh_server.token}"}
    with httpx.Client(base_url=gh_server.url, headers=headers, timeout=30) as client:
        body = {
            "prompt": "Add calc",
            "repo_path": str(repo),
            "provider": "script",
            "agent_options": {
                "scenario": {"steps": [{"write": {"path": "calc.py", "content": "x = 1\n"}}]},
                "on_message": [{"say": "Renamed."}],
            },
        }
        run = client.post("/api/runs", json=body).json()
        _wait(client, run["id"], "review")
        made = client.post(f"/api/runs/{run['id']}/resolve", json={"action": "create_pr"})
        assert made.status_code == 200, made.text
        number = made.json()["pull_request"]["number"]
        review = fake.add_review(
            REPO,
            number,
            "octocat",
            "CHANGES_REQUESTED",
            body="Nearly.",
            comments=[{"path": "calc.py", "line": 1, "body": "Call it total."}],
        )
        payload = {
            "action": "submitted",
            "review": {**review, "state": "changes_requested"},
            "pull_request": {"number": number},
            "repository": {"full_name": REPO},
        }
        raw = json.dumps(payload).encode()
        sent = client.post(
            "/api/github/webhooks",
            content=raw,
            headers={
                "X-GitHub-Delivery": str(uuid.uuid4()),
                "X-GitHub-Event": "pull_request_review",
                "X-Hub-Signature-256": sign_body(SECRET, raw),
                "Content-Type": "application/json",
            },
        )
        assert sent.status_code == 202, sent.text
        _wait(client, run["id"], "completed", pushes=2)  # the review's turn, pushed

    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        page.goto(f"{gh_server.url}/login#token={gh_server.token}")
        page.wait_for_url(f"{gh_server.url}/")
        page.goto(f"{gh_server.url}/runs/{run['number']}")
        expect(
            page.get_by_text("Review comment by octocat on calc.py:1: Call it total.")
        ).to_be_visible(timeout=20_000)
        expect(page.get_by_text("Review comment by octocat: Nearly.")).to_be_visible()
        expect(page.get_by_text("Requested changes handed to the agent")).to_be_visible()
        expect(page.get_by_label("Message")).to_be_enabled()  # completed, its PR still open
    finally:
        context.close()
