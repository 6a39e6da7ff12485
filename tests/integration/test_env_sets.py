"""Env sets: encrypted at rest, values never read back, applied to the agent's environment."""

from __future__ import annotations

import hashlib
import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from codeyard.crypto import secret_box
from codeyard.store import env_sets, schema
from tests.conftest import Api
from tests.support.server import ServerProcess, event_log, wait_status

pytestmark = pytest.mark.anyio

SECRET = "s3cr3t-Value-7f9c2e"  # distinctive, so a leak anywhere is found by substring
MASK = "••••"


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


async def make_env_set(api: Api, name: str = "deploy", **variables: str) -> dict[str, Any]:
    resp = await api.post(
        "/api/env-sets", json={"name": name, "variables": variables or {"MY_SECRET": SECRET}}
    )
    assert resp.status_code == 201, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def test_values_are_write_only_and_encrypted_at_rest(sqlite_api: Api) -> None:
    api = sqlite_api
    created = await make_env_set(api, MY_SECRET=SECRET, OTHER="plain-ish-value")
    assert created["id"].startswith("env_")
    assert created["variables"] == {"MY_SECRET": MASK, "OTHER": MASK}
    assert created["keys"] == ["MY_SECRET", "OTHER"]

    one = await api.get(f"/api/env-sets/{created['id']}")
    listing = await api.get("/api/env-sets")
    assert one.status_code == 200 and listing.status_code == 200
    assert [e["id"] for e in listing.json()["data"]] == [created["id"]]
    for resp in (one, listing):
        assert SECRET not in resp.text and "plain-ish-value" not in resp.text
        assert MASK in resp.text

    async with api.services.engine.connect() as conn:
        row = (await conn.execute(select(schema.env_sets))).one()._mapping
    assert SECRET not in row["ciphertext"] and "plain-ish" not in row["ciphertext"]
    assert row["ciphertext"].startswith("v1:") and row["keys"] == ["MY_SECRET", "OTHER"]
    key_file = api.services.settings.secret_key_path
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


async def test_put_replaces_and_the_mask_keeps_a_stored_value(sqlite_api: Api) -> None:
    api = sqlite_api
    created = await make_env_set(api, A="first-a", B="first-b")
    resp = await api.client.put(
        f"/api/env-sets/{created['id']}",
        json={"name": "renamed", "variables": {"A": MASK, "C": "new-c"}},
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["name"] == "renamed" and resp.json()["keys"] == ["A", "C"]
    async with api.services.engine.connect() as conn:
        row = await env_sets.get(conn, created["id"])
        box = secret_box(api.services.settings.secret_key_path)
        assert env_sets.variables_of(box, row) == {"A": "first-a", "C": "new-c"}

    unknown = await api.client.put(
        f"/api/env-sets/{created['id']}", json={"name": "renamed", "variables": {"Z": MASK}}
    )
    assert unknown.status_code == 422 and "Z" in unknown.json()["detail"]
    missing = await api.client.put("/api/env-sets/env_nope", json={"name": "x", "variables": {}})
    assert missing.status_code == 404


@pytest.mark.parametrize("bad", ["1ABC", "MY-VAR", "A B", "", "X=Y", "ÄPFEL", "a.b"])
async def test_bad_variable_names_get_422_naming_the_key(sqlite_api: Api, bad: str) -> None:
    resp = await sqlite_api.post(
        "/api/env-sets", json={"name": "x", "variables": {"GOOD": "1", bad: "v"}}
    )
    assert resp.status_code == 422, resp.text
    body = resp.json()
    assert repr(bad) in body["detail"] and "GOOD" not in body["detail"]
    assert body["errors"][0]["loc"] == ["body", "variables", bad]


async def test_names_are_unique_and_a_used_set_cannot_be_deleted(sqlite_api: Api) -> None:
    api = sqlite_api
    created = await make_env_set(api, "shared")
    dup = await api.post("/api/env-sets", json={"name": "shared", "variables": {}})
    assert dup.status_code == 409 and created["id"] in dup.json()["detail"]
    agent = await api.post(
        "/api/agents",
        json={"name": "a", "provider": "script", "env_set_ids": [created["id"]]},
    )
    assert agent.status_code == 201, agent.text
    refused = await api.delete(f"/api/env-sets/{created['id']}")
    assert refused.status_code == 409 and agent.json()["id"] in refused.json()["detail"]
    patched = await api.client.patch(f"/api/agents/{agent.json()['id']}", json={"env_set_ids": []})
    assert patched.status_code == 200, patched.text
    assert (await api.delete(f"/api/env-sets/{created['id']}")).status_code == 204
    assert (await api.get(f"/api/env-sets/{created['id']}")).status_code == 404


async def test_unknown_env_set_ids_are_refused_with_422(sqlite_api: Api, git_repo: Path) -> None:
    api = sqlite_api
    run = await api.post(
        "/api/runs",
        json={
            "prompt": "x",
            "repo_path": str(git_repo),
            "provider": "script",
            "env_set_ids": ["env_missing"],
        },
    )
    assert run.status_code == 422 and "env_missing" in run.json()["detail"]
    via_options = await api.post(
        "/api/runs",
        json={
            "prompt": "x",
            "repo_path": str(git_repo),
            "provider": "script",
            "agent_options": {"env_set_ids": ["env_other"]},
        },
    )
    assert via_options.status_code == 422 and "env_other" in via_options.json()["detail"]
    agent = await api.post(
        "/api/agents", json={"name": "a", "provider": "script", "env_set_ids": ["env_gone"]}
    )
    assert agent.status_code == 422 and "env_gone" in agent.json()["detail"]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path / "data")
    srv.start()
    yield srv
    srv.stop()


async def test_a_run_gets_the_values_and_nothing_stores_or_logs_them(
    server: ServerProcess, git_repo: Path
) -> None:
    """The bash step only succeeds when the variable arrived; then the value is searched for in
    everything the server wrote: its log, the database, the run's events and options."""
    async with server.client() as client:
        env_set = await client.post(
            "/api/env-sets", json={"name": "deploy", "variables": {"MY_SECRET": SECRET}}
        )
        profile_set = await client.post(
            "/api/env-sets", json={"name": "profile", "variables": {"FROM_PROFILE": SECRET[::-1]}}
        )
        assert env_set.status_code == 201 and profile_set.status_code == 201
        agent = await client.post(
            "/api/agents",
            json={
                "name": "bot",
                "provider": "script",
                "permission_mode": "auto",
                "env_set_ids": [profile_set.json()["id"]],
            },
        )
        assert agent.status_code == 201, agent.text
        # Compared by digest: the command itself must not contain the values.
        check = (
            f'test "$(printf %s "$MY_SECRET" | sha256sum)" = "{digest(SECRET)}  -" && '
            f'test "$(printf %s "$FROM_PROFILE" | sha256sum)" = "{digest(SECRET[::-1])}  -" '
            "&& touch proof"
        )
        resp = await client.post(
            "/api/runs",
            json={
                "prompt": "prove the env",
                "repo_path": str(git_repo),
                "agent_id": agent.json()["id"],
                "env_set_ids": [env_set.json()["id"]],
                "agent_options": {"scenario": {"steps": [{"bash": check}]}},
            },
        )
        assert resp.status_code == 201, resp.text
        run = await wait_status(client, resp.json()["id"], "review", "failed")
        assert run["status"] == "review", run["status_reason"]
        listing = (await client.get(f"/api/runs/{run['id']}/workspace")).json()
        names = [e["path"] for e in listing["entries"]]
        assert "proof" in names, "the bash step did not see the variables"
        results = [e for e in await event_log(client, run["id"]) if e["type"] == "tool.result"]
        assert results and results[-1]["data"]["ok"] is True

        stored = json.dumps(await event_log(client, run["id"])) + json.dumps(run)
        for path in (f"/api/runs/{run['id']}/logs", f"/api/runs/{run['id']}/snapshot"):
            stored += (await client.get(path)).text
    for value in (SECRET, SECRET[::-1]):
        at = stored.find(value)
        assert at < 0, f"leaked: …{stored[max(0, at - 300) : at + 40]}…"
        assert value not in server.log_path.read_text(errors="replace")
        for path in server.data_dir.rglob("*"):
            if path.is_file() and "worktrees" not in path.parts:
                assert value.encode() not in path.read_bytes(), f"{value} found in {path}"
