"""Linking a project's repository to a GitHub repository (issue 21): the link is its ``origin``,
checked with the fake GitHub over loopback HTTP first; an origin the user set is never replaced
or removed. Real git, SQLite, the app over ASGI."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from codeyard.config import Settings
from tests.conftest import TOKEN, make_repo, running_api
from tests.support.fake_github import FakeGitHub

pytestmark = pytest.mark.anyio


def git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitHub]:
    with FakeGitHub("ghp_link") as server:
        monkeypatch.setenv("CODEYARD_GITHUB_TOKEN", "ghp_link")
        monkeypatch.setenv("CODEYARD_GITHUB_API_URL", server.api_url)
        monkeypatch.setenv("CODEYARD_GITHUB_WEB_URL", "https://github.com")
        yield server


async def test_link_adds_origin_after_github_confirms_and_unlink_removes_only_its_own(
    fake: FakeGitHub, tmp_path: Path
) -> None:
    fake.add_repo("acme/site")
    repo = make_repo(tmp_path / "site")
    async with running_api(Settings(data_dir=tmp_path / "data", admin_token=TOKEN)) as api:
        made = await api.post(
            "/api/projects", json={"name": "site", "repos": [{"path": str(repo)}]}
        )
        assert made.status_code == 201, made.text
        project = made.json()["id"]
        link = f"/api/projects/{project}/github/link"

        missing = await api.post(link, json={"repository": "acme/nope"})
        assert missing.status_code == 400 and "found no repository acme/nope" in missing.text
        assert git(repo, "remote").stdout == ""  # nothing added for a refused link
        bad = await api.post(link, json={"repository": "not a repo"})
        assert bad.status_code == 422

        done = await api.post(link, json={"repository": "acme/site"})
        assert done.status_code == 200, done.text
        assert done.json()["linked"] is True
        url = "https://github.com/acme/site.git"
        assert git(repo, "remote", "get-url", "origin").stdout.strip() == url
        again = (await api.post(link, json={"repository": "acme/site"})).json()
        assert again["linked"] is False  # already linked: nothing changed
        elsewhere = await api.post(link, json={"repository": "acme/other"})
        assert elsewhere.status_code == 409 and "does not replace it" in elsewhere.text
        found = (await api.post("/api/github/detect-remote", json={"path": str(repo)})).json()
        assert found["repository"] == "acme/site" and found["pull_requests_via"] == "github"

        unlinked = await api.post(f"/api/projects/{project}/github/unlink", json={})
        assert unlinked.status_code == 200 and unlinked.json()["remote"] == url
        assert git(repo, "remote").stdout == ""

        # An origin the user set up is theirs: unlink leaves it.
        theirs = "git@gitlab.com:me/site.git"
        git(repo, "remote", "add", "origin", theirs)
        kept = await api.post(f"/api/projects/{project}/github/unlink", json={})
        assert kept.status_code == 409 and "not added by a link" in kept.text
        assert (
            git(repo, "remote", "get-url", "origin").stdout.strip() == "git@gitlab.com:me/site.git"
        )
