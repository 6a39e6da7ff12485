"""Each user's git identity: set through ``/api/me/git-identity``, carried by the commits of
their runs (the agent's own, and Codeyard's snapshot and landing commits) on a machine where
git has no identity of its own (no global config, ``user.useConfigOnly``), where those commits
failed before."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Api, make_repo
from tests.support.auth import add_user, bearer, token_of

pytestmark = pytest.mark.anyio
SCOPES = ["runs:read", "runs:write", "git:merge", "settings:write"]


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def no_identity(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The server's account has no git identity: no variables, no global or system config
    (the agent's HOME is the server's, so an empty one), and git may not guess one."""
    for var in ("AUTHOR_NAME", "AUTHOR_EMAIL", "COMMITTER_NAME", "COMMITTER_EMAIL"):
        monkeypatch.delenv(f"GIT_{var}", raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


async def test_profile_routes(sqlite_api: Api) -> None:
    api = sqlite_api
    mine = await api.get("/api/me/git-identity")  # the admin token: Codeyard's identity
    assert mine.json() == {
        "name": None,
        "email": None,
        "effective_name": "Codeyard",
        "effective_email": "codeyard@localhost",
    }
    refused = await api.request("PUT", "/api/me/git-identity", json={"name": "Root"})
    assert refused.status_code == 400 and "Sign in as a user" in refused.json()["detail"]

    await add_user(api, "ana.l", "member")
    async with bearer(api, await token_of(api, "ana.l", ["runs:read"])) as ana:
        default = (await ana.get("/api/me/git-identity")).json()
        assert default["effective_name"] == "ana.l"
        assert default["effective_email"] == "ana.l@users.codeyard.invalid"
        bad = await ana.put("/api/me/git-identity", json={"name": "Ana", "email": "ana at home"})
        assert bad.status_code == 422 and "name@example.com" in bad.json()["detail"]
        bad = await ana.put("/api/me/git-identity", json={"name": "Ana <x>"})
        assert bad.status_code == 422 and "'<'" in bad.json()["detail"]
        ok = await ana.put(
            "/api/me/git-identity", json={"name": " Ana Lima ", "email": "ana@example.com"}
        )
        assert ok.status_code == 200, ok.text
        assert ok.json() == {
            "name": "Ana Lima",
            "email": "ana@example.com",
            "effective_name": "Ana Lima",
            "effective_email": "ana@example.com",
        }
        reset = await ana.put("/api/me/git-identity", json={"name": None, "email": None})
        assert reset.json()["effective_name"] == "ana.l"
    # Another user's identity is untouched, and the admin's still Codeyard's.
    assert (await api.get("/api/me/git-identity")).json()["effective_name"] == "Codeyard"


async def test_a_users_runs_commit_as_that_user(
    sqlite_api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = sqlite_api
    repo = make_repo(tmp_path / "site", {"README.md": "# site\n"})
    git(repo, "config", "user.useConfigOnly", "true")  # never guess from the host name
    no_identity(monkeypatch, tmp_path)
    await add_user(api, "olga", "member")
    async with bearer(api, await token_of(api, "olga", SCOPES)) as olga:
        set_ = await olga.put(
            "/api/me/git-identity", json={"name": "Olga K", "email": "olga@example.com"}
        )
        assert set_.status_code == 200, set_.text
        steps = [
            {"write": {"path": "a.txt", "content": "a\n"}},
            {"bash": "git add a.txt && git commit -q -m 'agent commit' && echo COMMITTED"},
            {"write": {"path": "b.txt", "content": "b\n"}},  # left for Codeyard to commit
        ]
        body = {
            "prompt": "Add two files",
            "repo_path": str(repo),
            "provider": "script",
            "agent_options": {"scenario": {"steps": steps}},
        }
        created = await olga.post("/api/runs", json=body)
        assert created.status_code == 201, created.text
        run = await api.wait_status(created.json()["id"], "review", "failed")
        assert run["status"] == "review", run["status_reason"]
        branch = run["branch"]
        agent = git(repo, "log", "-1", "--format=%an <%ae>|%cn <%ce>|%s", branch)
        assert agent == "Olga K <olga@example.com>|Olga K <olga@example.com>|agent commit"

        landed = await olga.post(f"/api/runs/{run['id']}/resolve", json={"action": "squash"})
        assert landed.status_code == 200, landed.text
    squashed = git(repo, "log", "-1", "--format=%an <%ae>|%cn <%ce>", "main")
    assert squashed == "Olga K <olga@example.com>|Olga K <olga@example.com>"
    assert git(repo, "show", "main:b.txt") == "b"  # the outstanding file was committed too
    snapshot = git(repo, "log", "-1", "--format=%an <%ae>|%cn <%ce>", branch)
    assert snapshot == "Olga K <olga@example.com>|Olga K <olga@example.com>"
