"""A GitHub App through the manifest flow (issue 21), against the fake GitHub over real loopback
HTTP: the App's key is a real RSA key, its JWTs are verified by the fake as GitHub would, and
installation tokens it mints are what pull requests then use.

Real parts: the app over ASGI, SQLite (the App's secrets encrypted in the settings table),
githubkit signing and calling over httpx, the webhook route checking the App's secret.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from codeyard.config import Settings
from codeyard.github.signature import sign_body
from codeyard.prs import registry
from codeyard.prs.base import TOKEN_VARIABLES, PrConfig
from codeyard.store import settings as settings_store
from tests.conftest import TOKEN, running_api
from tests.support.fake_github_app import FakeGitHubApp
from tests.support.live_app import serve
from tests.support.server import free_port
from tests.support.waits import eventually

pytestmark = pytest.mark.anyio


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitHubApp]:
    with FakeGitHubApp("ghp_not_used") as server:
        for name in TOKEN_VARIABLES:  # only the App's installation token
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("CODEYARD_GITHUB_API_URL", server.api_url)
        monkeypatch.setenv("CODEYARD_GITHUB_WEB_URL", "https://github.com")
        yield server


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        admin_token=TOKEN,
        public_url="https://codeyard.example",
        github_webhook_secret="",
        github_sweep_seconds=3600,
        github_poll_budget_per_hour=0,
    )


async def test_an_app_from_its_manifest_stores_secrets_encrypted_and_mints_tokens(
    fake: FakeGitHubApp, tmp_path: Path
) -> None:
    async with running_api(_settings(tmp_path)) as api:
        assert (await api.get("/api/github/app/status")).json() == {
            "configured": False,
            "installations": [],
            "app_id": None,
            "slug": None,
            "html_url": None,
            "owner": None,
            "token_expires_at": None,
        }
        started = await api.post("/api/github/app/manifest", json={"organization": "acme"})
        assert started.status_code == 200, started.text
        start = started.json()
        state = parse_qs(urlsplit(start["post_url"]).query)["state"][0]
        assert start["post_url"].startswith("https://github.com/organizations/acme/settings/")
        assert state == start["state"]
        hook = start["manifest"]["hook_attributes"]["url"]
        assert hook == "https://codeyard.example/api/github/webhooks"
        assert start["manifest"]["default_permissions"]["pull_requests"] == "write"

        # A forged or replayed callback stores nothing.
        code = fake.manifest_code()
        forged = await api.get(
            "/api/github/app/callback", params={"code": code, "state": "guessed"}
        )
        assert forged.status_code == 400 and "state is unknown" in forged.json()["detail"]
        assert (await api.get("/api/github/app/status")).json()["configured"] is False

        back = await api.get("/api/github/app/callback", params={"code": code, "state": state})
        assert back.status_code == 303, back.text
        assert back.headers["location"] == "https://github.com/apps/codeyard-test/installations/new"
        again = await api.get("/api/github/app/callback", params={"code": code, "state": state})
        assert again.status_code == 400  # single use

        async with api.services.engine.connect() as conn:
            stored = (await settings_store.load(conn))["github_app"]
        raw = json.dumps(stored)
        key_body = fake.pem.splitlines()[1]
        assert key_body not in raw and fake.webhook_secret not in raw
        assert stored["pem"].startswith("v1:") and stored["app_id"] == fake.app_id

        # An installation GitHub does not confirm is not recorded.
        unknown = await api.get("/api/github/app/setup", params={"installation_id": 99})
        assert unknown.status_code == 400 and "404" in unknown.json()["detail"]
        fake.install(77, "acme", ["acme/demo", "acme/site"])
        done = await api.get(
            "/api/github/app/setup", params={"installation_id": 77, "setup_action": "install"}
        )
        assert done.status_code == 303
        assert done.headers["location"] == "https://codeyard.example/?github_app=installed"
        status = (await api.get("/api/github/app/status")).json()
        assert status["installations"] == [{"id": 77, "account": "acme"}]
        assert status["app_id"] == fake.app_id and status["token_expires_at"]
        assert "pem" not in status and fake.webhook_secret not in json.dumps(status)

        repos = (await api.get("/api/github/app/repos")).json()
        assert [(r["full_name"], r["installation_id"]) for r in repos] == [
            ("acme/demo", 77),
            ("acme/site", 77),
        ]

        made = await api.post("/api/github/app/repos", json={"name": "newone", "private": True})
        assert made.status_code == 201, made.text
        assert made.json()["full_name"] == "acme/newone" and made.json()["installation_id"] == 77
        taken = await api.post("/api/github/app/repos", json={"name": "newone"})
        assert taken.status_code == 400 and "name is taken" in taken.json()["detail"]
        other = await api.post("/api/github/app/repos", json={"name": "x", "installation_id": 5})
        assert other.status_code == 400 and "77 (acme)" in other.json()["detail"]
        listed = [r["full_name"] for r in (await api.get("/api/github/app/repos")).json()]
        assert "acme/newone" in listed

        # Pull requests now go with the installation token (no token variable is set).
        config = PrConfig.from_env()
        assert config.github_token is not None and fake.minted.get(config.github_token) == 77
        fake.add_repo("acme/demo")
        host = await registry.host_for("https://github.com/acme/demo.git", config)
        opened = await host.create("https://github.com/acme/demo.git", "f", "main", "T", "", False)
        assert opened.number == 1
        sent = next(r for r in fake.requests if r.method == "POST" and r.path.endswith("/pulls"))
        assert sent.headers["authorization"] == f"Bearer {config.github_token}"

        # The App's deliveries are signed with its own secret.
        raw_body = json.dumps({"zen": "hi", "repository": {"full_name": "acme/demo"}}).encode()
        for secret, expected in ((fake.webhook_secret, 202), ("not-the-secret", 403)):
            headers = {
                "X-GitHub-Delivery": str(uuid.uuid4()),
                "X-GitHub-Event": "ping",
                "X-Hub-Signature-256": sign_body(secret, raw_body),
                "Content-Type": "application/json",
            }
            got = await api.post("/api/github/webhooks", content=raw_body, headers=headers)
            assert got.status_code == expected, got.text
    assert PrConfig.from_env().github_token is None  # the token goes with the server


async def test_the_manifest_needs_a_public_url_and_an_admin(
    fake: FakeGitHubApp, tmp_path: Path
) -> None:
    settings = _settings(tmp_path)
    settings.public_url = ""
    async with running_api(settings) as api:
        refused = await api.post("/api/github/app/manifest", json={"name": "x" * 35})
        assert refused.status_code == 422
        no_org = await api.post("/api/github/app/manifest", json={"organization": None})
        # null = the person's account (was a 500): it passes the body and meets the next check
        assert no_org.status_code == 400 and "CODEYARD_PUBLIC_URL" in no_org.text, no_org.text
        bad_org = await api.post("/api/github/app/manifest", json={"organization": "a/b"})
        assert bad_org.status_code == 422
        unreachable = await api.post("/api/github/app/manifest", json={})
        assert unreachable.status_code == 400
        assert "Set CODEYARD_PUBLIC_URL" in unreachable.json()["detail"]
        none = await api.get("/api/github/app/repos")
        assert none.status_code == 404 and "POST /api/github/app/manifest" in none.json()["detail"]


async def _connect(client: httpx.AsyncClient, fake: FakeGitHubApp) -> None:
    """The manifest flow as a browser goes through it, then installation 77 on ``acme``."""
    start = (await client.post("/api/github/app/manifest", json={})).json()
    params = {"code": fake.manifest_code(), "state": start["state"]}
    assert (await client.get("/api/github/app/callback", params=params)).status_code == 303
    fake.install(77, "acme", ["acme/demo"])
    setup = await client.get("/api/github/app/setup", params={"installation_id": 77})
    assert setup.status_code == 303, setup.text


async def test_the_sweeper_recovers_an_app_delivery_lost_while_the_server_was_down(
    fake: FakeGitHubApp, tmp_path: Path
) -> None:
    port = free_port()
    settings = _settings(tmp_path)
    settings.port, settings.public_url = port, f"http://127.0.0.1:{port}"
    async with serve(settings) as live, live.rest() as client:
        await _connect(client, fake)
        fake.app_hook(f"{live.url}/api/github/webhooks")  # the manifest's hook URL
        assert await asyncio.to_thread(fake.deliver_app, "acme/demo", "ping", {}) == 202

        fake.hooks[9001].url = f"http://127.0.0.1:{free_port()}/api/github/webhooks"  # down
        lost = {"action": "completed", "check_run": {"name": "build", "conclusion": "failure"}}
        assert await asyncio.to_thread(fake.deliver_app, "acme/demo", "check_run", lost) == 0
        fake.hooks[9001].url = f"{live.url}/api/github/webhooks"

        swept = await client.post("/api/github/webhooks/sweep")
        assert swept.json() == {"hooks": 1, "listed": 2, "redelivered": 1, "problems": []}

        async def recovered() -> bool:
            rows = (await client.get("/api/github/webhooks/events")).json()["data"]
            return [r["event"] for r in rows] == ["check_run", "ping"]

        assert await eventually(recovered, timeout=30)
        rows = (await client.get("/api/github/webhooks/events")).json()["data"]
        assert {r["hook_id"] for r in rows} == {"9001"}
        again = (await client.post("/api/github/webhooks/sweep")).json()
        assert again["redelivered"] == 0  # the recovered delivery is in the inbox now
