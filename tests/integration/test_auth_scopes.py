"""Scopes and roles: every route declares one scope, and the walk over the OpenAPI schema proves
each route refuses callers without it and lets callers with only it through."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from codeyard.api.auth import PSEUDO_SCOPES, SIGNED_IN
from codeyard.auth.scopes import ALL, READ_SCOPES
from tests.conftest import Api
from tests.integration.test_approvals import pending
from tests.integration.test_bad_input import PUBLIC_ROUTES, assert_problem
from tests.support.auth import add_user, bearer, sign_in, token_of

pytestmark = pytest.mark.anyio


def _scopes_of(dependant: Dependant) -> list[str]:
    found = []
    for dep in dependant.dependencies:
        scope = getattr(dep.call, "required_scope", None)
        if scope is not None:
            found.append(scope)
        found.extend(_scopes_of(dep))
    return found


def api_routes(routes: list[Any], prefix: str = "") -> list[tuple[str, APIRoute]]:
    """(full path, route) of every APIRoute, through included routers (FastAPI includes them
    lazily: an included router stays one entry with its prefix)."""
    out: list[tuple[str, APIRoute]] = []
    for route in routes:
        if isinstance(route, APIRoute):
            out.append((prefix + route.path, route))
        elif (included := getattr(route, "original_router", None)) is not None:
            out.extend(api_routes(included.routes, prefix + route.include_context.prefix))
    return out


def declared_scopes(api: Api) -> dict[tuple[str, str], str]:
    """(method, path) → the one scope the route declares (public routes left out)."""
    out: dict[tuple[str, str], str] = {}
    for raw_path, route in api_routes(api.app.routes):
        if not raw_path.startswith("/api"):
            continue
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", raw_path)  # as OpenAPI names it
        for method in route.methods:
            scopes = set(_scopes_of(route.dependant))
            if (method, path) in PUBLIC_ROUTES:
                assert not scopes, (method, path, scopes)
                continue
            assert len(scopes) == 1, (method, path, scopes)
            out[(method, path)] = scopes.pop()
    assert len(out) > 80, "the route walk found too few routes"
    return out


#: Reads that need the run's ownership on top of the read scope: a preview reaches a program
#: the run's owner started, so a viewer may read the run but not browse its ports.
OWNER_ONLY_READS = {
    ("GET", "/api/runs/{run_ref}/preview"),
    ("POST", "/api/runs/{run_ref}/preview/{index}/link"),
}


#: Event streams whose path does not end in ``/stream`` (the seed's channel stream).
STREAMS = {"/api/events"}


def openapi_routes(api: Api) -> list[tuple[str, str]]:
    schema = api.app.openapi()
    return [(m.upper(), p) for p, ops in schema["paths"].items() for m in ops]


def concrete(path: str) -> str:
    return re.sub(r"\{[a-z_]+\}", "1", path)


async def test_every_route_declares_exactly_one_scope(api: Api) -> None:
    declared = declared_scopes(api)
    for route in openapi_routes(api):
        assert route in declared or route in PUBLIC_ROUTES, route
    expected = {
        ("GET", "/api/runs"): "runs:read",
        ("POST", "/api/runs"): "runs:write",
        ("POST", "/api/runs/{run_ref}/messages"): "runs:write",
        ("POST", "/api/runs/{run_ref}/pause"): "runs:control",
        ("POST", "/api/runs/{run_ref}/cancel"): "runs:control",
        ("POST", "/api/approvals/{approval_id}/resolve"): "approvals:resolve",
        ("POST", "/api/runs/{run_ref}/trust"): "approvals:resolve",
        ("POST", "/api/runs/{run_ref}/resolve"): "git:merge",
        ("POST", "/api/runs/{run_ref}/push"): "git:push",
        ("GET", "/api/settings"): "settings:read",
        ("PUT", "/api/settings"): "settings:write",
        ("POST", "/api/agents"): "settings:write",
        ("POST", "/api/gc"): "admin",
        ("GET", "/api/users"): "admin",
        ("POST", "/api/runs/{run_ref}/share"): "runs:write",
        ("GET", "/api/auth/me"): SIGNED_IN,
    }
    for route, scope in expected.items():
        assert declared[route] == scope, route


async def test_walk_each_route_needs_its_scope_and_only_it(api: Api) -> None:
    """A token with every scope but the route's own → 403; with only that scope → not 401/403."""
    await add_user(api, "root", "admin")
    declared = declared_scopes(api)
    tokens: dict[str, str] = {}
    for scope in sorted(ALL - {"admin"}):
        tokens[f"all-but:{scope}"] = await token_of(api, "root", sorted(ALL - {scope, "admin"}))
        tokens[f"only:{scope}"] = await token_of(api, "root", [scope])
    tokens["all-but:admin"] = await token_of(api, "root", sorted(ALL - {"admin"}))
    for (method, path), scope in sorted(declared.items()):
        if scope in PSEUDO_SCOPES:
            continue  # signed_in: any caller; account: tests/integration/test_ownership.py
        url = concrete(path)
        async with bearer(api, tokens[f"all-but:{scope}"]) as client:
            resp = await client.request(method, url, json={})
            if method == "HEAD":  # no body to read the problem from
                assert resp.status_code == 403, (method, path)
            else:
                body = assert_problem(resp, 403, scope)
                assert body["required_scope"] == scope
        if path.endswith("/stream") or path in STREAMS or scope == "admin":
            continue  # a stream with access would not end; admin routes: 'only' = all
        async with bearer(api, tokens[f"only:{scope}"]) as client:
            resp = await client.request(method, url, json={})
            assert resp.status_code not in (401, 403), (method, path, resp.text)


async def test_a_viewer_reads_and_does_nothing_else(api: Api, git_repo: Path) -> None:
    run = (
        await api.post(
            "/api/runs",
            json={
                "prompt": "x",
                "repo_path": str(git_repo),
                "provider": "script",
                "agent_options": {"scenario": {"steps": []}},
            },
        )
    ).json()
    await api.wait_status(run["id"], "review")
    await add_user(api, "val", "viewer")
    declared = declared_scopes(api)
    async with sign_in(api, "val") as viewer:
        me = (await viewer.get("/api/auth/me")).json()
        assert sorted(me["scopes"]) == sorted(READ_SCOPES)
        for (method, path), scope in sorted(declared.items()):
            if scope in PSEUDO_SCOPES or path.endswith("/stream") or path in STREAMS:
                continue  # a stream the viewer may read would not end
            url = path.replace("{run_ref}", run["id"])
            url = concrete(url)
            resp = await viewer.request(method, url, json={})
            if (method, path) in OWNER_ONLY_READS:
                assert_problem(resp, 403, "another user")
            elif scope in READ_SCOPES:
                assert resp.status_code not in (401, 403), (method, path, resp.text)
            else:
                assert resp.status_code == 403, (method, path, resp.status_code)
        # A viewer's token cannot hold more than the viewer may do.
        resp = await viewer.post("/api/tokens", json={"name": "x", "scopes": ["runs:write"]})
        assert_problem(resp, 403, "runs:write")
    assert (await api.get(f"/api/runs/{run['id']}")).json()["status"] == "review"


async def test_token_scopes_shrink_with_the_users_role(api: Api, git_repo: Path) -> None:
    member = await add_user(api, "max", "member")
    token = await token_of(api, "max", ["runs:read", "runs:write"])
    # Registered by the admin: a run that registers a repository needs settings:write.
    project = {"name": "p", "repos": [{"path": str(git_repo)}]}
    assert (await api.post("/api/projects", json=project)).status_code == 201
    body = {"prompt": "x", "repo_path": str(git_repo), "provider": "script", "draft": True}
    async with bearer(api, token) as client:
        created = await client.post("/api/runs", json=body)
        assert created.status_code == 201
        assert created.json()["created_by"] == member["id"]
        assert_problem(await client.post("/api/gc", json={}), 403, "admin")
        resp = await api.request("PATCH", f"/api/users/{member['id']}", json={"role": "viewer"})
        assert resp.json()["role"] == "viewer"
        assert_problem(await client.post("/api/runs", json=body), 403, "runs:write")
        assert (await client.get("/api/runs")).status_code == 200
        me = (await client.get("/api/auth/me")).json()
        assert me["kind"] == "token" and me["scopes"] == ["runs:read"]
        listed = (await client.get("/api/tokens")).json()["data"]
        assert [t["prefix"] for t in listed] == [token[:11]]
        assert "token" not in listed[0]
        resp = await client.request("DELETE", f"/api/tokens/{listed[0]['id']}")
        assert resp.status_code == 204
        assert_problem(await client.get("/api/runs"), 401)


async def test_expired_token_is_refused(api: Api) -> None:
    await add_user(api, "old", "member")
    async with sign_in(api, "old") as client:
        past = {"name": "p", "scopes": ["runs:read"], "expires_at": "2020-01-01T00:00:00Z"}
        assert_problem(await client.post("/api/tokens", json=past), 422, "past")
        soon = {"name": "s", "scopes": ["runs:read"], "expires_at": "2099-01-01T00:00:00"}
        token = (await client.post("/api/tokens", json=soon)).json()
        assert token["token"].startswith("cy_pat_")
        assert token["expires_at"] == "2099-01-01T00:00:00.000Z"
        unknown = {"name": "u", "scopes": ["runs:fly"]}
        body = assert_problem(await client.post("/api/tokens", json=unknown), 422, "runs:fly")
        assert "Valid scopes: runs:read, runs:write" in body["detail"]
    api.app.state.auth.clock = lambda: 4_102_444_800.0 + 1  # 2100-01-01
    async with bearer(api, token["token"]) as client:
        assert_problem(await client.get("/api/runs"), 401, "expired")


async def test_a_member_cannot_act_on_another_members_run(api: Api, git_repo: Path) -> None:
    await add_user(api, "ann", "member")
    await add_user(api, "ben", "member")
    # Ann registers the repository with her first run, which needs settings:write (issue 11).
    scopes = ["runs:read", "runs:write", "approvals:resolve", "git:merge"]
    ann = await token_of(api, "ann", [*scopes, "settings:write"])
    ben = await token_of(api, "ben", scopes)
    body: dict[str, Any] = {
        "prompt": "Work",
        "repo_path": str(git_repo),
        "provider": "script",
        "agent_options": {
            "scenario": {"steps": [{"write": {"path": "a.txt", "content": "a"}}]},
            "permission_mode": "default",
        },
    }
    async with bearer(api, ann) as ann_client, bearer(api, ben) as ben_client:
        run = (await ann_client.post("/api/runs", json=body)).json()
        approval = (await pending(api, run["id"]))[0]
        resolve = {"decision": "approved"}
        url = f"/api/approvals/{approval['id']}/resolve"
        assert_problem(await ben_client.post(url, json=resolve), 403, "another user")
        for action in ("messages", "cancel", "trust", "share"):
            resp = await ben_client.post(f"/api/runs/{run['id']}/{action}", json={"text": "hi"})
            assert resp.status_code == 403, (action, resp.text)
        # Reading is fine for every member.
        assert (await ben_client.get(f"/api/runs/{run['id']}")).status_code == 200
        assert (await ann_client.post(url, json=resolve)).status_code == 200
        await api.wait_status(run["id"], "review")
        merge = {"action": "merge"}
        resp = await ben_client.post(f"/api/runs/{run['id']}/resolve", json=merge)
        assert_problem(resp, 403, "another user")
        # create_pr also needs git:push, which neither token holds.
        resp = await ann_client.post(f"/api/runs/{run['id']}/resolve", json={"action": "create_pr"})
        assert_problem(resp, 403, "git:push")
    # The admin may act on anyone's run.
    assert (await api.post(f"/api/runs/{run['id']}/resolve", json=merge)).status_code == 200
