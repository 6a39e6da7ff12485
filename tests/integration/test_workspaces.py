"""Workspaces (issue 22, CodePiper's ``/workspaces``): CRUD with everything named checked, and
runs started in a workspace: its project, its defaults for what the run leaves out, listed by
workspace, and another user's workspace refused — through the API on real SQLite and git."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api, make_repo
from tests.support.auth import add_user, bearer, token_of

pytestmark = pytest.mark.anyio

SCENARIO = {"scenario": {"steps": [{"say": "done"}]}}


async def _project(api: Api, tmp_path: Path, name: str) -> dict[str, Any]:
    repo = make_repo(tmp_path / name)
    resp = await api.post("/api/projects", json={"name": name, "repos": [{"path": str(repo)}]})
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def _policy_set(api: Api, name: str = "ws") -> str:
    policy = await api.post("/api/policies", json={"name": name, "rules": []})
    assert policy.status_code == 201, policy.text
    body = {"name": f"{name} set", "policy_ids": [policy.json()["id"]]}
    pset = await api.post("/api/policy-sets", json=body)
    assert pset.status_code == 201, pset.text
    return str(pset.json()["id"])


async def test_workspace_crud_checks_what_it_names(sqlite_api: Api, tmp_path: Path) -> None:
    api = sqlite_api
    web = await _project(api, tmp_path, "web")
    body = {
        "name": "Frontend",
        "description": "the web team",
        "project_ids": [web["slug"]],  # a slug is stored as the project's id
        "defaults": {"provider": "script", "budget_usd": 0.5},
    }
    created = await api.post("/api/workspaces", json=body)
    assert created.status_code == 201, created.text
    ws = created.json()
    assert ws["project_ids"] == [web["id"]] and ws["defaults"]["budget_usd"] == 0.5
    assert ws["owner_id"] is None  # the admin token

    assert (await api.get(f"/api/workspaces/{ws['id']}")).json() == ws
    listed = (await api.get("/api/workspaces")).json()
    assert [w["id"] for w in listed["data"]] == [ws["id"]]

    taken = await api.post("/api/workspaces", json={"name": "Frontend"})
    assert taken.status_code == 409 and ws["id"] in taken.json()["detail"]
    for bad, fix in (
        ({"name": "x", "project_ids": ["nope"]}, "No project 'nope'"),
        ({"name": "x", "defaults": {"provider": "nope"}}, "No provider 'nope'"),
        ({"name": "x", "defaults": {"agent_id": "agt_nope"}}, "No agent profile"),
        ({"name": "x", "defaults": {"env_set_ids": ["env_nope"]}}, "Unknown env sets"),
        ({"name": "x", "defaults": {"policy_set_ids": ["ps_nope"]}}, "Unknown policy sets"),
        ({"name": "x", "defaults": {"budget_usd": -1}}, "greater than or equal"),
        ({"name": "x", "colour": "red"}, "Extra inputs"),
    ):
        resp = await api.post("/api/workspaces", json=bad)
        assert resp.status_code == 422, (bad, resp.text)
        assert fix in resp.text, (bad, resp.text)
    assert len((await api.get("/api/workspaces")).json()["data"]) == 1  # nothing half-created

    renamed = await api.request(
        "PUT", f"/api/workspaces/{ws['id']}", json={**body, "name": "Web", "project_ids": []}
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["name"] == "Web" and renamed.json()["project_ids"] == []
    assert (await api.delete(f"/api/workspaces/{ws['id']}")).status_code == 204
    assert (await api.get(f"/api/workspaces/{ws['id']}")).status_code == 404


async def test_runs_in_a_workspace_take_its_project_and_defaults(
    sqlite_api: Api, tmp_path: Path
) -> None:
    api = sqlite_api
    web = await _project(api, tmp_path, "web")
    other = await _project(api, tmp_path, "other")
    pset = await _policy_set(api)
    env = await api.post("/api/env-sets", json={"name": "ws env", "variables": {"A": "1"}})
    assert env.status_code == 201, env.text
    defaults = {
        "provider": "script",
        "budget_usd": 0.75,
        "policy_set_ids": [pset],
        "env_set_ids": [env.json()["id"]],
    }
    ws = (
        await api.post(
            "/api/workspaces",
            json={"name": "Frontend", "project_ids": [web["id"]], "defaults": defaults},
        )
    ).json()

    # Only a prompt: the workspace's one project, provider, budget, policy set and env set.
    body = {"prompt": "Hi", "workspace_id": ws["id"], "agent_options": SCENARIO}
    created = await api.post("/api/runs", json=body)
    assert created.status_code == 201, created.text
    run = created.json()
    assert run["workspace_id"] == ws["id"] and run["project_id"] == web["id"]
    assert run["provider"] == "script" and run["budget_usd"] == 0.75
    done = await api.wait_status(run["id"], "review")
    assert done["workspace_id"] == ws["id"]
    policy = (await api.get(f"/api/runs/{run['id']}/policy")).json()
    assert policy["policy_set_ids"] == [pset]

    # What the run says wins over the defaults.
    own = {**body, "budget_usd": 2.0}
    assert (await api.post("/api/runs", json=own)).json()["budget_usd"] == 2.0

    # A project outside the workspace, or a path instead of a project: refused, nothing made.
    outside = await api.post("/api/runs", json={**body, "project_id": other["id"]})
    assert outside.status_code == 422 and "is not in workspace 'Frontend'" in outside.text
    by_path = await api.post("/api/runs", json={**body, "repo_path": str(tmp_path / "other")})
    assert by_path.status_code == 422 and "give project_id" in by_path.text
    missing = await api.post("/api/runs", json={**body, "workspace_id": "ws_nope"})
    assert missing.status_code == 422 and "No workspace 'ws_nope'" in missing.text

    # Dry run: the workspace's defaults are what is validated.
    checked = await api.post("/api/runs/validate", json=body)
    assert checked.status_code == 200, checked.text
    assert checked.json()["project_id"] == web["id"]
    assert checked.json()["policy_set_ids"] == [pset]

    # Listed by workspace; a run outside it is not.
    plain = {"prompt": "Hi", "project_id": other["id"], "provider": "script", **{}}
    assert (
        await api.post("/api/runs", json={**plain, "agent_options": SCENARIO})
    ).status_code == 201
    in_ws = (await api.get(f"/api/runs?workspace_id={ws['id']}")).json()["data"]
    assert len(in_ws) == 2 and {r["workspace_id"] for r in in_ws} == {ws["id"]}
    assert len((await api.get("/api/runs")).json()["data"]) == 3


async def test_another_users_workspace_is_refused(sqlite_api: Api, tmp_path: Path) -> None:
    api = sqlite_api
    web = await _project(api, tmp_path, "web")
    ws = (
        await api.post(
            "/api/workspaces",
            json={"name": "Admins", "project_ids": [web["id"]], "defaults": {"provider": "script"}},
        )
    ).json()
    await add_user(api, "mia", "member")
    scopes = ["runs:read", "runs:write", "settings:read", "settings:write"]
    async with bearer(api, await token_of(api, "mia", scopes)) as mia:
        assert (await mia.get(f"/api/workspaces/{ws['id']}")).status_code == 403
        assert (await mia.get("/api/workspaces")).json()["data"] == []
        run = await mia.post(
            "/api/runs", json={"prompt": "Hi", "workspace_id": ws["id"], "agent_options": SCENARIO}
        )
        assert run.status_code == 403 and "belongs to another user" in run.text
        # Her own workspace may not name a project she does not manage.
        mine = await mia.post("/api/workspaces", json={"name": "Mine", "project_ids": [web["id"]]})
        assert mine.status_code == 403, mine.text
        mine = await mia.post("/api/workspaces", json={"name": "Mine"})
        assert mine.status_code == 201 and mine.json()["owner_id"] is not None
    assert (await api.get(f"/api/workspaces/{mine.json()['id']}")).status_code == 200  # admin


async def test_follow_ups_and_retries_stay_in_the_workspace_under_its_policy_sets(
    sqlite_api: Api, tmp_path: Path
) -> None:
    """A follow-up or retry continues the work of a run in a workspace: it is listed in the
    same workspace and keeps the run's policy sets (not a way out of either); once the
    workspace is deleted, they start outside any workspace instead of failing."""
    api = sqlite_api
    web = await _project(api, tmp_path, "web")
    ws_set, own_set = await _policy_set(api), await _policy_set(api, "own")
    ws = (
        await api.post(
            "/api/workspaces",
            json={
                "name": "Frontend",
                "project_ids": [web["id"]],
                "defaults": {"provider": "script", "policy_set_ids": [ws_set]},
            },
        )
    ).json()
    body = {
        "prompt": "Hi",
        "workspace_id": ws["id"],
        "agent_options": SCENARIO,
        "policy_set_ids": [own_set],
    }
    run = (await api.post("/api/runs", json=body)).json()
    await api.wait_status(run["id"], "review")

    follow = await api.post(
        f"/api/runs/{run['id']}/follow-up", json={"prompt": "More", "agent_options": SCENARIO}
    )
    assert follow.status_code == 201, follow.text
    retry = await api.post(f"/api/runs/{run['id']}/retry")
    assert retry.status_code == 201, retry.text
    for child in (follow.json(), retry.json()):
        assert child["workspace_id"] == ws["id"] and child["parent_run_id"] == run["id"]
        policy = (await api.get(f"/api/runs/{child['id']}/policy")).json()
        assert sorted(policy["policy_set_ids"]) == sorted([ws_set, own_set]), policy
        await api.wait_status(child["id"], "review")
    listed = (await api.get(f"/api/runs?workspace_id={ws['id']}")).json()["data"]
    assert len(listed) == 3

    assert (await api.delete(f"/api/workspaces/{ws['id']}")).status_code == 204
    orphan = await api.post(f"/api/runs/{run['id']}/retry")
    assert orphan.status_code == 201, orphan.text
    assert orphan.json()["workspace_id"] is None and orphan.json()["project_id"] == web["id"]
    policy = (await api.get(f"/api/runs/{orphan.json()['id']}/policy")).json()
    assert sorted(policy["policy_set_ids"]) == sorted([ws_set, own_set])
