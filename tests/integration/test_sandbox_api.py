"""The sandbox through the API: the setting (admins only may turn it off, loudly), the problem
when bubblewrap is missing, admin-only options, and script runs and setup scripts that cannot
read the data directory or the server's environment.

Real parts: the app over httpx, SQLite, real git, the real ``bwrap`` binary. A missing bwrap is
a real configuration (``bwrap_path`` pointing at no file), not a mock.
"""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from codeyard.app import create_app
from codeyard.config import Settings
from codeyard.sandbox import probe
from tests.conftest import TOKEN, Api, make_repo, open_api
from tests.integration.test_bad_input import assert_problem
from tests.integration.test_repo_settings import project_repo
from tests.support.auth import add_user, bearer, token_of

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(
        not probe(None).ok and os.environ.get("CI") != "true",
        reason=f"no sandbox here: {probe(None).problem}",
    ),
]
SECRET = "server-env-secret-4242"


@pytest.fixture(autouse=True)
def _server_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    """A secret in the server's own environment, as CODEYARD_GITHUB_TOKEN would be."""
    monkeypatch.setenv("CODEYARD_TEST_SECRET", SECRET)
    monkeypatch.setenv("GITHUB_TOKEN", SECRET + "-gh")


def hidden(path: Path) -> str:
    """A shell expression for ``path`` that no policy gate can read (decoded when it runs)."""
    return f"$(echo {base64.b64encode(str(path).encode()).decode()} | base64 -d)"


def script_run(repo: Path, *steps: dict[str, Any], **options: Any) -> dict[str, Any]:
    return {
        "prompt": "Try",
        "repo_path": str(repo),
        "provider": "script",
        "agent_options": {"scenario": {"steps": list(steps)}, "permission_mode": "auto", **options},
    }


async def results(api: Api, run_id: str) -> list[dict[str, Any]]:
    events = (await api.get(f"/api/runs/{run_id}/events?limit=500")).json()["data"]
    return [e["data"] for e in events if e["type"] == "tool.result"]


async def test_a_script_agent_cannot_read_the_data_dir_or_the_servers_environment(
    sqlite_api: Api, git_repo: Path
) -> None:
    api = sqlite_api
    data = api.services.settings.data_dir
    (data / "planted.secret").write_text("planted-data-dir-secret\n")
    command = (
        f"cat {hidden(data / 'planted.secret')}; "
        f'echo "env=$CODEYARD_TEST_SECRET $GITHUB_TOKEN"; ls {hidden(data)}; echo ok > mine.txt'
    )
    resp = await api.post("/api/runs", json=script_run(git_repo, {"bash": command}))
    assert resp.status_code == 201, resp.text
    run = await api.wait_status(resp.json()["id"], "review")
    (result,) = await results(api, run["id"])
    assert "No such file or directory" in result["output"]
    assert SECRET not in result["output"] and "planted-data-dir-secret" not in result["output"]
    assert "codeyard.db" not in result["output"]
    (worktree,) = api.services.settings.worktree_root.glob(f"*/{run['number']}-*/*")
    assert (worktree / "mine.txt").read_text() == "ok\n"  # the worktree is writable
    logs = await api.get(f"/api/runs/{run['id']}/logs")
    assert SECRET not in logs.text


async def test_setup_scripts_run_contained(sqlite_api: Api, tmp_path: Path) -> None:
    api = sqlite_api
    data = api.services.settings.data_dir
    repo = make_repo(tmp_path / "svc")
    script = f"cat {hidden(data / 'secret.key')}; env; echo $CODEYARD_RUN_ID; touch .ready"
    await project_repo(api, repo, setup_script=script)
    resp = await api.post("/api/runs", json=script_run(repo, {"bash": "test -f .ready"}))
    run = await api.wait_status(resp.json()["id"], "review", "failed")
    assert run["status"] == "review", run["status_reason"]
    setup = (await results(api, run["id"]))[0]
    assert run["id"] in setup["output"]  # Codeyard's informational variables are given
    assert SECRET not in setup["output"] and "GITHUB_TOKEN" not in setup["output"]
    assert "No such file or directory" in setup["output"]


async def test_the_read_gate_holds_with_the_sandbox_off(sqlite_api: Api, git_repo: Path) -> None:
    api = sqlite_api
    resp = await api.request("PUT", "/api/settings", json={"sandbox": "off"})
    assert resp.status_code == 200, resp.text
    data = api.services.settings.data_dir
    steps = [{"bash": f"cat {data}/admin.token"}, {"bash": "echo $CODEYARD_TEST_SECRET"}]
    resp = await api.post("/api/runs", json=script_run(git_repo, *steps))
    run = await api.wait_status(resp.json()["id"], "review")
    gated, env = await results(api, run["id"])
    assert gated["ok"] is False and "data directory" in gated["error"]
    assert SECRET not in env["output"]  # the environment is an allowlist either way


async def test_only_admins_turn_the_sandbox_off_and_off_is_loud(sqlite_api: Api) -> None:
    api = sqlite_api
    settings = (await api.get("/api/settings")).json()
    assert settings["sandbox"] == "on"
    status = settings["sandbox_status"]
    assert status["available"] is True and status["bwrap"] and status["warning"] is None
    await add_user(api, "mia", "member")
    async with bearer(api, await token_of(api, "mia", ["settings:write", "settings:read"])) as mia:
        assert_problem(await mia.put("/api/settings", json={"sandbox": "off"}), 403, "admin")
        resp = await mia.put("/api/settings", json={"sandbox": "on"})
        assert resp.status_code == 200, resp.text
    assert_problem(await api.request("PUT", "/api/settings", json={"sandbox": "maybe"}), 422)
    resp = await api.request("PUT", "/api/settings", json={"sandbox": "off"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["sandbox"] == "off"
    assert "SANDBOX OFF" in resp.json()["sandbox_status"]["warning"]
    # What GET returned may be sent back as is.
    again = await api.request("PUT", "/api/settings", json=resp.json())
    assert again.status_code == 200, again.text


async def test_binaries_and_loader_variables_are_for_admins(
    sqlite_api: Api, git_repo: Path
) -> None:
    api = sqlite_api
    await add_user(api, "max", "member")
    scopes = ["runs:write", "runs:read", "settings:write", "settings:read", "approvals:resolve"]
    async with bearer(api, await token_of(api, "max", scopes)) as max_:
        for options, word in (
            ({"cli_path": "/bin/sh"}, "cli_path"),
            ({"env": {"LD_PRELOAD": "/tmp/x.so", "FOO": "1"}}, "LD_PRELOAD"),
            ({"env": {"PATH": "/tmp/evil"}}, "PATH"),
            ({"env": {"GIT_CONFIG_GLOBAL": "/tmp/c"}}, "GIT_CONFIG_GLOBAL"),
        ):
            resp = await max_.post("/api/runs", json=script_run(git_repo, **options))
            assert_problem(resp, 403, word)
        profile = {"name": "mine", "provider": "gemini", "provider_config": {"command": "sh"}}
        assert_problem(await max_.post("/api/agents", json=profile), 403, "command")
        env_set = {"name": "mine", "variables": {"LD_PRELOAD": "/tmp/x.so"}}
        assert_problem(await max_.post("/api/env-sets", json=env_set), 403, "LD_PRELOAD")
        resp = await max_.post("/api/runs", json=script_run(git_repo, network="model-only"))
        assert_problem(resp, 422, "network")
        resp = await max_.post("/api/runs", json=script_run(git_repo, env={"FOO": "1"}))
        assert resp.status_code == 201, resp.text
    assert (await api.get("/api/runs")).json()["data"][0]["created_by"] is not None
    resp = await api.post("/api/runs", json=script_run(git_repo, env={"PATH": "/usr/bin:/bin"}))
    assert resp.status_code == 201, resp.text  # an admin may


@pytest.fixture
async def no_bwrap_api(tmp_path: Path) -> AsyncIterator[Api]:
    settings = Settings(
        data_dir=tmp_path / "data", admin_token=TOKEN, bwrap_path=str(tmp_path / "no/bwrap")
    )
    async for api in open_api(settings):
        yield api


async def test_runs_fail_with_a_problem_when_bubblewrap_is_missing(
    no_bwrap_api: Api, git_repo: Path
) -> None:
    api = no_bwrap_api
    status = (await api.get("/api/settings")).json()["sandbox_status"]
    assert status["available"] is False and "not found" in status["problem"]
    resp = await api.post("/api/runs", json=script_run(git_repo, {"say": "hi"}))
    body = assert_problem(resp, 409, "bubblewrap", "unsandboxed")
    assert body["title"] == "Sandbox unavailable"
    assert (await api.get("/api/runs")).json()["data"] == []  # nothing half-created
    await api.request("PUT", "/api/settings", json={"sandbox": "off"})
    resp = await api.post("/api/runs", json=script_run(git_repo, {"bash": "echo unsandboxed"}))
    assert resp.status_code == 201, resp.text  # an admin's explicit choice
    await api.wait_status(resp.json()["id"], "review")


async def test_serve_announces_an_unavailable_or_switched_off_sandbox(tmp_path: Path) -> None:
    notices: list[str] = []
    missing = Settings(data_dir=tmp_path / "a", admin_token=TOKEN, bwrap_path="/no/bwrap")
    app = create_app(missing, announce=notices.append)
    async with app.router.lifespan_context(app):
        pass
    assert any("SANDBOX UNAVAILABLE" in n and "bubblewrap" in n for n in notices), notices
    settings = Settings(data_dir=tmp_path / "b", admin_token=TOKEN)
    async for api in open_api(settings):
        await api.request("PUT", "/api/settings", json={"sandbox": "off"})
    notices.clear()
    app = create_app(settings, announce=notices.append)
    async with app.router.lifespan_context(app):
        pass
    assert any("SANDBOX OFF" in n for n in notices), notices
