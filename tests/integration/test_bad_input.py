"""Bad input gets a clear RFC 7807 problem and leaves nothing behind: no row, worktree or branch."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tests.conftest import TOKEN, Api

pytestmark = pytest.mark.anyio


def branches(repo: Path) -> list[str]:
    out = subprocess.run(
        ["git", "-C", str(repo), "branch", "--format=%(refname:short)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split()


async def assert_nothing_created(api: Api, repo: Path) -> None:
    async with api.services.engine.connect() as conn:
        for table in ("runs", "projects", "repos", "events"):
            count = (await conn.execute(text(f"SELECT COUNT(*) FROM {table}"))).scalar()
            assert count == 0, f"{table} has {count} rows"
    worktrees = Path(api.services.settings.worktree_root)
    assert not any(worktrees.iterdir())
    assert branches(repo) == ["main"]


def assert_problem(resp: Any, status: int, *words: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = resp.json()
    assert body["status"] == status and body["title"] and body["type"]
    for word in words:
        assert word in body["detail"], body
    return body


def run_body(repo: Path, **over: Any) -> dict[str, Any]:
    return {"prompt": "Do it", "repo_path": str(repo), "provider": "script", **over}


async def test_path_that_is_not_a_git_work_tree(api: Api, git_repo: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    resp = await api.post("/api/runs", json=run_body(plain))
    assert_problem(resp, 400, "not a git work tree", str(plain))
    await assert_nothing_created(api, git_repo)


async def test_unknown_provider_lists_the_available_ones(api: Api, git_repo: Path) -> None:
    resp = await api.post("/api/runs", json=run_body(git_repo, provider="nope"))
    body = assert_problem(resp, 422, "nope", "script")
    assert "script" in body["available"] and body["errors"][0]["loc"] == ["provider"]
    await assert_nothing_created(api, git_repo)


@pytest.mark.parametrize("prompt", ["", "   \n"])
async def test_empty_prompt(api: Api, git_repo: Path, prompt: str) -> None:
    resp = await api.post("/api/runs", json=run_body(git_repo, prompt=prompt))
    body = assert_problem(resp, 422)
    assert any("prompt" in e["loc"] for e in body["errors"])
    await assert_nothing_created(api, git_repo)


async def test_unknown_source_ref_is_named(api: Api, git_repo: Path) -> None:
    resp = await api.post("/api/runs", json=run_body(git_repo, source_ref="no-such-branch"))
    body = assert_problem(resp, 400, "no-such-branch")
    assert body["source_ref"] == "no-such-branch"
    await assert_nothing_created(api, git_repo)


async def test_malformed_json(api: Api, git_repo: Path) -> None:
    resp = await api.request(
        "POST",
        "/api/runs",
        content=b'{"prompt": "x",',
        headers={"content-type": "application/json"},
    )
    assert_problem(resp, 400, "not valid JSON")
    await assert_nothing_created(api, git_repo)


async def test_invalid_scenario_is_422_with_the_step(api: Api, git_repo: Path) -> None:
    resp = await api.post(
        "/api/runs",
        json=run_body(
            git_repo, agent_options={"scenario": {"steps": [{"say": "ok"}, {"dance": 1}]}}
        ),
    )
    body = assert_problem(resp, 422, "scenario")
    assert body["errors"][0]["loc"][-1] == 1
    await assert_nothing_created(api, git_repo)


async def test_unknown_field_is_refused(api: Api, git_repo: Path) -> None:
    resp = await api.post("/api/runs", json=run_body(git_repo, repository="oops"))
    assert_problem(resp, 422, "repository")
    await assert_nothing_created(api, git_repo)


async def test_action_in_wrong_status_is_409_and_changes_nothing(api: Api, git_repo: Path) -> None:
    run = (await api.post("/api/runs", json=run_body(git_repo, draft=True))).json()
    before = (await api.get(f"/api/runs/{run['id']}/events")).json()["data"]
    for action in ("pause", "resume"):
        body = assert_problem(await api.post(f"/api/runs/{run['id']}/{action}"), 409, action)
        assert body["current_status"] == "draft"
    after = (await api.get(f"/api/runs/{run['id']}/events")).json()["data"]
    assert after == before
    assert (await api.get(f"/api/runs/{run['id']}")).json()["status"] == "draft"
    assert branches(git_repo) == ["main"]


async def test_delete_active_run_is_409(api: Api, git_repo: Path) -> None:
    steps = {"scenario": {"steps": [{"sleep": 30}]}}
    run = (await api.post("/api/runs", json=run_body(git_repo, agent_options=steps))).json()
    await api.wait_status(run["id"], "running")
    body = assert_problem(await api.delete(f"/api/runs/{run['id']}"), 409)
    assert body["current_status"] == "running"
    await api.post(f"/api/runs/{run['id']}/cancel")


async def test_unknown_run_and_bad_cursor(api: Api) -> None:
    assert_problem(await api.get("/api/runs/run_missing"), 404, "run_missing")
    assert_problem(await api.get("/api/runs/999"), 404)
    assert_problem(await api.get("/api/runs?cursor=@@@"), 400, "cursor")
    assert_problem(await api.get("/api/runs?limit=501"), 422)
    assert_problem(await api.get("/api/nothing-here"), 404, "/api/nothing-here")


#: The routes API.md calls public ("Health and meta", "Auth and users").
PUBLIC_ROUTES = {
    ("GET", "/api/health"),
    ("GET", "/api/auth/status"),
    ("POST", "/api/auth/setup"),
    ("POST", "/api/auth/login"),
    ("POST", "/api/auth/token-login"),
    # Sign-in by emailed one-time code (issue 19): the code is the credential.
    ("POST", "/api/auth/request-otp"),
    ("POST", "/api/auth/verify-otp"),
    ("GET", "/api/share/{token}/run"),
    ("GET", "/api/share/{token}/events"),
    ("GET", "/api/share/{token}/events/stream"),
    ("GET", "/api/share/{token}/terminals"),
    # A notification's one-tap link: the signed single-use token is the permission.
    ("GET", "/api/notifications/actions/{token}"),
    ("POST", "/api/notifications/actions/{token}"),
    # A Slack button click: Slack's v0 signature (the channel's signing secret) is the permission.
    ("POST", "/api/notifications/slack/{channel_id}/interactions"),
    # A command's output download link: the sealed, expiring token is the permission.
    ("GET", "/api/command-output/{token}"),
    # The API reference page and its bundled assets (the schema it reads is public too).
    ("GET", "/api/docs"),
    ("GET", "/api/docs/init.js"),
    ("GET", "/api/docs/assets/{name}"),
    # GitHub's webhook deliveries: the HMAC signature over the raw body is the permission.
    ("POST", "/api/github/webhooks"),
    # The GitHub App manifest flow's redirects: the single-use state, and GitHub's word (asked
    # with the App's key) that the installation is this App's, are the permissions.
    ("GET", "/api/github/app/callback"),
    ("GET", "/api/github/app/setup"),
}


async def test_every_api_route_but_the_public_ones_needs_the_token(api: Api) -> None:
    client = api.client
    assert (await client.get("/api/health", headers={"Authorization": ""})).status_code == 200
    schema = api.app.openapi()
    routes = [(m.upper(), p) for p, ops in schema["paths"].items() for m in ops]
    assert len(routes) > 30
    for method, path in routes:
        if (method, path) in PUBLIC_ROUTES:
            continue
        url = re.sub(r"\{[a-z_]+\}", "1", path)
        for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong"}):
            resp = await client.request(method, url, headers=headers, json={})
            assert resp.status_code == 401, (method, path, resp.status_code)
            assert resp.headers["www-authenticate"] == "Bearer"
    ok = await client.get("/api/runs", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200


async def test_project_with_bad_repo_leaves_nothing(
    api: Api, git_repo: Path, tmp_path: Path
) -> None:
    resp = await api.post(
        "/api/projects",
        json={"name": "P", "repos": [{"path": str(git_repo)}, {"path": str(tmp_path / "missing")}]},
    )
    assert_problem(resp, 400, "not a git work tree")
    assert (await api.get("/api/projects")).json()["data"] == []
    resp = await api.post(
        "/api/projects", json={"name": "P", "repos": [{"url": "http://127.0.0.1:9/nope.git"}]}
    )
    assert_problem(resp, 400, "Could not clone")
    assert not any(Path(api.services.settings.repos_root).iterdir())


async def test_a_script_run_without_a_scenario_is_refused(api: Api, git_repo: Path) -> None:
    """Issue 14: it would end at once with no changes and still offer a merge. The API refuses
    it (not only the UI), naming the fix; a draft may wait for one and is checked at start."""
    body = assert_problem(
        await api.post("/api/runs", json=run_body(git_repo)), 422, "agent_options.scenario"
    )
    assert body["errors"][0]["loc"] == ["body", "agent_options", "scenario"]
    assert "--scenario" in body["detail"] and "claude-code" in body["detail"]
    await assert_nothing_created(api, git_repo)
    checked = await api.post("/api/runs/validate", json=run_body(git_repo))
    assert_problem(checked, 422, "needs a scenario")
    draft = (await api.post("/api/runs", json=run_body(git_repo, draft=True))).json()
    assert_problem(await api.post(f"/api/runs/{draft['id']}/start"), 422, "needs a scenario")
    assert (await api.get(f"/api/runs/{draft['id']}")).json()["status"] == "draft"
    # An explicit (even empty) scenario is a choice, and runs.
    empty = {"scenario": {"steps": []}}
    run = await api.post("/api/runs", json=run_body(git_repo, agent_options=empty))
    assert run.status_code == 201, run.text
    await api.wait_status(run.json()["id"], "review")
