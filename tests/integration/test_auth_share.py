"""Share links: a secret URL shows one run read-only, until it expires or is revoked."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api
from tests.integration.test_bad_input import assert_problem
from tests.support.auth import add_user, anonymous, bearer, token_of

pytestmark = pytest.mark.anyio


async def finished_run(api: Api, repo: Path, prompt: str) -> dict[str, Any]:
    steps = {"scenario": {"steps": [{"say": f"done: {prompt}"}]}}
    body = {"prompt": prompt, "repo_path": str(repo), "provider": "script", "agent_options": steps}
    run: dict[str, Any] = (await api.post("/api/runs", json=body)).json()
    await api.wait_status(run["id"], "review")
    return run


async def test_a_share_link_shows_one_run_read_only(api: Api, git_repo: Path) -> None:
    run = await finished_run(api, git_repo, "shared")
    other = await finished_run(api, git_repo, "private")
    # The link is built from the configured public URL, not the request's Host (issue 11).
    api.services.settings.public_url = "https://cy.example.com/"
    resp = await api.post(f"/api/runs/{run['id']}/share", json={"ttl_hours": 2})
    assert str(api.client.base_url).rstrip("/") != "https://cy.example.com"
    assert resp.status_code == 201, resp.text
    link = resp.json()
    token = link["token"]
    assert link["url"] == f"https://cy.example.com/share/{token}"
    assert link["run_id"] == run["id"] and link["expires_at"] > link["created_at"]

    async with anonymous(api) as client:
        shown = (await client.get(f"/api/share/{token}/run")).json()
        assert shown["id"] == run["id"] and shown["status"] == "review"
        page = (await client.get(f"/api/share/{token}/events?limit=500")).json()
        types = [e["type"] for e in page["data"]]
        assert "run.created" in types and "agent.message" in types
        assert {e["run_id"] for e in page["data"]} == {run["id"]}
        first = (await client.get(f"/api/share/{token}/events?limit=1")).json()
        assert len(first["data"]) == 1 and first["next_cursor"] is not None
        # Nothing else: not as a bearer token, not for writes, not for another run.
        for path in (f"/api/runs/{other['id']}", f"/api/runs/{run['id']}", "/api/runs"):
            resp = await client.get(path, headers={"Authorization": f"Bearer {token}"})
            assert_problem(resp, 401)
        assert (await client.post(f"/api/share/{token}/run", json={})).status_code == 405
        resp = await client.post(f"/api/runs/{run['id']}/cancel", params={"access_token": token})
        assert_problem(resp, 401)
        assert_problem(await client.get("/api/share/cy_shr_unknown/run"), 404, "not valid")
        assert_problem(await client.get("/api/share/whatever/events"), 404)

    listed = (await api.get(f"/api/runs/{run['id']}/shares")).json()["data"]
    assert [s["id"] for s in listed] == [link["id"]] and "token" not in listed[0]
    assert_problem(await api.delete(f"/api/runs/{other['id']}/shares/{link['id']}"), 404)
    assert (await api.delete(f"/api/runs/{run['id']}/shares/{link['id']}")).status_code == 204
    async with anonymous(api) as client:
        assert_problem(await client.get(f"/api/share/{token}/run"), 404)


async def test_share_links_expire(api: Api, git_repo: Path) -> None:
    run = await finished_run(api, git_repo, "soon gone")
    link = (await api.post(f"/api/runs/{run['id']}/share")).json()  # default: 24 hours
    state = api.app.state.auth
    now = time.time()
    async with anonymous(api) as client:
        state.clock = lambda: now + 23 * 3600
        assert (await client.get(f"/api/share/{link['token']}/run")).status_code == 200
        state.clock = lambda: now + 24 * 3600 + 5
        assert_problem(await client.get(f"/api/share/{link['token']}/run"), 404)
        assert_problem(await client.get(f"/api/share/{link['token']}/events"), 404)


async def test_sharing_needs_runs_write_on_ones_own_run(api: Api, git_repo: Path) -> None:
    run = await finished_run(api, git_repo, "admin's")
    await add_user(api, "vic", "viewer")
    await add_user(api, "mia", "member")
    viewer = await token_of(api, "vic", ["runs:read"])
    member = await token_of(api, "mia", ["runs:read", "runs:write"])
    async with bearer(api, viewer) as client:
        assert_problem(await client.post(f"/api/runs/{run['id']}/share"), 403, "runs:write")
    async with bearer(api, member) as client:
        assert_problem(await client.post(f"/api/runs/{run['id']}/share"), 403, "another user")
    # Deleting the run ends its links.
    link = (await api.post(f"/api/runs/{run['id']}/share")).json()
    assert (await api.delete(f"/api/runs/{run['id']}")).status_code == 204
    async with anonymous(api) as client:
        assert_problem(await client.get(f"/api/share/{link['token']}/run"), 404)
