"""Projects, repositories, agent profiles, providers and health, on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Api, make_repo
from tests.support.git_http import git_http_server

pytestmark = pytest.mark.anyio


async def test_health_is_public_and_names_the_database(api: Api) -> None:
    resp = await api.client.get("/api/health", headers={"Authorization": ""})
    body = resp.json()
    assert resp.status_code == 200 and body["status"] == "ok"
    assert body["database"] == api.services.engine.dialect.name
    assert body["database"] in ("sqlite", "postgresql")


async def test_providers_lists_script_with_capabilities(api: Api) -> None:
    data = (await api.get("/api/providers")).json()["data"]
    script = next(p for p in data if p["name"] == "script")
    assert script["available"] is True and script["problem"] is None
    assert script["capabilities"]["resume"] is True


async def test_project_from_path_and_from_a_url(api: Api, git_repo: Path, tmp_path: Path) -> None:
    # Cloned over real loopback HTTP: file:// and other local transports are refused (issue 11).
    upstream = make_repo(tmp_path / "upstream", {"lib.py": "x = 1\n"})
    with git_http_server(tmp_path / "served") as remote:
        url = remote.publish(upstream, "lib")
        resp = await api.post(
            "/api/projects",
            json={
                "name": "My App",
                "repos": [{"path": str(git_repo / ".")}, {"url": url, "name": "lib"}],
            },
        )
    assert resp.status_code == 201, resp.text
    project = resp.json()
    assert project["slug"] == "my-app" and project["id"].startswith("prj_")
    local, cloned = project["repos"]
    assert local["path"] == str(git_repo) and local["default_branch"] == "main"
    assert cloned["name"] == "lib" and cloned["url"] == url
    assert (Path(cloned["path"]) / "lib.py").read_text() == "x = 1\n"
    assert Path(cloned["path"]).is_relative_to(api.services.settings.repos_root)
    assert (await api.get("/api/projects/my-app")).json()["id"] == project["id"]

    patched = (
        await api.request("PATCH", f"/api/projects/{project['id']}", json={"name": "Renamed"})
    ).json()
    assert patched["name"] == "Renamed"
    repo = (
        await api.request(
            "PATCH",
            f"/api/repos/{local['id']}",
            json={"copy_files": [".env"], "setup_script": "make"},
        )
    ).json()
    assert repo["copy_files"] == [".env"] and repo["setup_script"] == "make"
    assert (
        await api.delete(f"/api/projects/{project['id']}/repos/{cloned['id']}")
    ).status_code == 204
    assert len((await api.get(f"/api/projects/{project['id']}")).json()["repos"]) == 1


async def test_run_on_a_multi_repo_project_gets_a_worktree_per_repo(
    api: Api, tmp_path: Path
) -> None:
    a, b = make_repo(tmp_path / "a"), make_repo(tmp_path / "b")
    project = (
        await api.post(
            "/api/projects", json={"name": "Two", "repos": [{"path": str(a)}, {"path": str(b)}]}
        )
    ).json()
    run = (
        await api.post(
            "/api/runs",
            json={
                "prompt": "Both",
                "project_id": project["id"],
                "provider": "script",
                "agent_options": {"scenario": {"steps": []}},
            },
        )
    ).json()
    assert len(run["repo_ids"]) == 2 and set(run["base_commits"]) == set(run["repo_ids"])
    done = await api.wait_status(run["id"], "review")
    roots = {p.parent.name for p in Path(api.services.settings.worktree_root).rglob("README.md")}
    assert roots == {"a", "b"}
    assert done["branch"].startswith(f"codeyard/{run['number']}-")


async def test_projects_list_pages_and_slug_collisions(api: Api, tmp_path: Path) -> None:
    ids = []
    for i in range(3):
        repo = make_repo(tmp_path / f"r{i}")
        ids.append(
            (
                await api.post(
                    "/api/projects", json={"name": "Same", "repos": [{"path": str(repo)}]}
                )
            ).json()
        )
    assert [p["slug"] for p in ids] == ["same", "same-2", "same-3"]
    first = (await api.get("/api/projects?limit=2")).json()
    second = (await api.get(f"/api/projects?limit=2&cursor={first['next_cursor']}")).json()
    seen = [p["id"] for p in first["data"] + second["data"]]
    assert sorted(seen) == sorted(p["id"] for p in ids) and second["next_cursor"] is None
    conflict = await api.post("/api/projects", json={"name": "X", "slug": "same", "repos": []})
    assert conflict.status_code == 409


async def test_repo_path_reuses_its_project(api: Api, git_repo: Path) -> None:
    body = {"prompt": "one", "repo_path": str(git_repo), "provider": "script", "draft": True}
    first = (await api.post("/api/runs", json=body)).json()
    second = (await api.post("/api/runs", json={**body, "prompt": "two"})).json()
    assert first["project_id"] == second["project_id"] and first["repo_ids"] == second["repo_ids"]
    assert len((await api.get("/api/projects")).json()["data"]) == 1


async def test_delete_project_refused_while_a_run_is_active(api: Api, git_repo: Path) -> None:
    run = (
        await api.post(
            "/api/runs",
            json={
                "prompt": "wait",
                "repo_path": str(git_repo),
                "provider": "script",
                "agent_options": {"scenario": {"steps": [{"sleep": 30}]}},
            },
        )
    ).json()
    await api.wait_status(run["id"], "running")
    resp = await api.delete(f"/api/projects/{run['project_id']}")
    assert resp.status_code == 409 and "active runs" in resp.json()["detail"]
    await api.post(f"/api/runs/{run['id']}/cancel")
    assert (await api.delete(f"/api/projects/{run['project_id']}")).status_code == 204
    assert (await api.get(f"/api/runs/{run['id']}")).status_code == 404
    assert not any(p.is_dir() for p in Path(api.services.settings.worktree_root).rglob("*"))


async def test_agent_profiles_crud_and_runs_use_their_config(api: Api, git_repo: Path) -> None:
    scenario = {"steps": [{"say": "from the profile"}]}
    resp = await api.post(
        "/api/agents",
        json={
            "name": "Demo",
            "provider": "script",
            "model": "m-1",
            "provider_config": {"scenario": scenario},
        },
    )
    assert resp.status_code == 201
    agent = resp.json()
    assert agent["id"].startswith("agt_") and agent["permission_mode"] == "default"
    bad = await api.post("/api/agents", json={"name": "X", "provider": "nope"})
    assert bad.status_code == 422 and "script" in bad.json()["detail"]
    run = (
        await api.post(
            "/api/runs", json={"prompt": "go", "repo_path": str(git_repo), "agent_id": agent["id"]}
        )
    ).json()
    assert run["agent_id"] == agent["id"] and run["provider"] == "script" and run["model"] == "m-1"
    await api.wait_status(run["id"], "review")
    items = (await api.get(f"/api/runs/{run['id']}/transcript")).json()["items"]
    assert [i["text"] for i in items if i["kind"] == "assistant"] == ["from the profile"]
    patched = (
        await api.request("PATCH", f"/api/agents/{agent['id']}", json={"model": "m-2"})
    ).json()
    assert patched["model"] == "m-2" and patched["name"] == "Demo"
    assert [a["id"] for a in (await api.get("/api/agents")).json()["data"]] == [agent["id"]]
    assert (await api.delete(f"/api/agents/{agent['id']}")).status_code == 204
    assert (await api.get(f"/api/agents/{agent['id']}")).status_code == 404
