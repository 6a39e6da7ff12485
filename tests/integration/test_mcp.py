"""Codeyard's MCP server driven by the official SDK's own client: over streamable HTTP against
a real server on a loopback port, over stdio through ``codeyard mcp``, and as an agent holding a
run token (recursion-safe delegation: lineage, inherited policies, budget slices, depth and
fan-out limits, who may decide which approval). Runs use the ``script`` provider, which goes
through the same executor, policy and approval path as real agents.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent

from codeyard.config import Settings
from tests.conftest import TOKEN
from tests.support.live_app import Live, serve
from tests.support.server import free_port

pytestmark = pytest.mark.anyio
TOOLS = {
    "start_run",
    "wait_run",
    "send_message",
    "get_run",
    "list_runs",
    "get_diff",
    "decide_approval",
    "land_run",
}


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    settings = Settings(
        data_dir=tmp_path / "data",
        admin_token=TOKEN,
        port=free_port(),
        bash_timeout_seconds=30,
        mcp_max_children=2,
        mcp_max_depth=2,
    )
    async with serve(settings) as server:
        yield server


@contextlib.asynccontextmanager
async def mcp_client(live: Live, token: str = TOKEN) -> AsyncIterator[Client]:
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60)
    async with http, Client(streamable_http_client(f"{live.url}/mcp", http_client=http)) as c:
        yield c


def out(result: CallToolResult) -> dict[str, Any]:
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


def error_text(result: CallToolResult) -> str:
    assert result.is_error, result.structured_content
    first = result.content[0]
    assert isinstance(first, TextContent)
    return first.text


async def script_profile(
    live: Live, steps: list[dict[str, Any]], mode: str = "auto", name: str = "scripted"
) -> str:
    async with live.rest() as rest:
        resp = await rest.post(
            "/api/agents",
            json={
                "name": name,
                "provider": "script",
                "permission_mode": mode,
                "provider_config": {"scenario": {"steps": steps}},
            },
        )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


async def test_http_tools_with_output_schemas_start_wait_diff_and_resume_by_cursor(
    live: Live, git_repo: Path
) -> None:
    agent = await script_profile(
        live, [{"write": {"path": "notes.txt", "content": "planted\n"}}, {"say": "wrote notes"}]
    )
    async with mcp_client(live) as client:
        listed = await client.list_tools()
        tools = {t.name: t for t in listed.tools}
        assert set(tools) == TOOLS
        assert all(t.output_schema is not None for t in tools.values())
        assert "cursor" in tools["wait_run"].input_schema["properties"]

        started = out(
            await client.call_tool(
                "start_run",
                {"prompt": "Write notes", "agent_id": agent, "repo_path": str(git_repo)},
            )
        )
        run_id = started["run"]["id"]
        assert started["run"]["status"] == "queued" and started["reason"] == "started"

        done = out(
            await client.call_tool(
                "wait_run",
                {"run": run_id, "until": "completed", "cursor": started["cursor"], "timeout": 60},
            )
        )
        assert done["reached"] and done["reason"] == "completed"
        assert done["run"]["status"] == "review"
        assert any(
            e["type"] == "agent.message" and "wrote notes" in e["text"] for e in done["events"]
        )
        assert done["cursor"] > started["cursor"]

        # Resuming from the returned cursor: nothing new has happened, so the wait times out
        # with no events; from the start it replays the log at once.
        again = out(
            await client.call_tool(
                "wait_run",
                {"run": run_id, "until": "any", "cursor": done["cursor"], "timeout": 0.3},
            )
        )
        assert again["reason"] == "timeout" and not again["reached"] and again["events"] == []
        assert again["cursor"] == done["cursor"]
        replay = out(
            await client.call_tool("wait_run", {"run": run_id, "until": "any", "cursor": 0})
        )
        assert replay["reason"] == "event" and replay["events"][0]["type"] == "run.created"

        diff = out(await client.call_tool("get_diff", {"run": run_id}))
        assert [f["path"] for f in diff["files"]] == ["notes.txt"]
        assert "+planted" in diff["patch"] and diff["stats"]["insertions"] == 1

        runs = out(await client.call_tool("list_runs", {}))
        assert [r["id"] for r in runs["runs"]] == [run_id]

        resource = await client.read_resource(f"codeyard://runs/{run_id}/diff")
        assert "+planted" in resource.contents[0].text  # type: ignore[union-attr]
        transcript = await client.read_resource(f"codeyard://runs/{run_id}/transcript")
        assert "wrote notes" in transcript.contents[0].text  # type: ignore[union-attr]

        landed = out(await client.call_tool("land_run", {"run": run_id, "action": "merge"}))
        assert landed["status"] == "completed"
    assert (git_repo / "notes.txt").read_text() == "planted\n"


async def test_http_needs_a_bearer_token_and_tools_check_scopes(live: Live) -> None:
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as raw:
        resp = await raw.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert resp.status_code == 401
        assert resp.headers["content-type"].startswith("application/problem+json")
        assert "Bearer" in resp.json()["detail"]
        forged = await raw.post(
            "/mcp", json={}, headers={"Authorization": "Bearer cy_run_v1bm90LWEtdG9rZW4="}
        )
        assert forged.status_code == 401
    async with live.rest() as rest:
        made = await rest.post("/api/tokens", json={"name": "reader", "scopes": ["runs:read"]})
        assert made.status_code == 201, made.text
        reader = made.json()["token"]
    async with mcp_client(live, reader) as client:
        assert out(await client.call_tool("list_runs", {}))["runs"] == []
        refused = await client.call_tool("start_run", {"prompt": "x", "provider": "script"})
        assert "runs:write" in error_text(refused)
        refused = await client.call_tool(
            "decide_approval", {"approval_id": "apr_x", "decision": "approved"}
        )
        assert "approvals:resolve" in error_text(refused)


async def test_stdio_relay_with_the_cli_token(live: Live, git_repo: Path) -> None:
    async with live.rest() as rest:
        created = await rest.post(
            "/api/runs",
            json={
                "prompt": "Say hi",
                "repo_path": str(git_repo),
                "provider": "script",
                "agent_options": {"scenario": {"steps": [{"say": "hi"}]}},
            },
        )
        assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    cli = Path(sys.executable).with_name("codeyard")
    env = {**os.environ, "CODEYARD_TOKEN": TOKEN, "CODEYARD_SERVER": live.url}
    params = StdioServerParameters(command=str(cli), args=["mcp"], env=env)
    async with Client(params) as client:
        assert {t.name for t in (await client.list_tools()).tools} == TOOLS
        waited = out(
            await client.call_tool("wait_run", {"run": run_id, "until": "completed", "timeout": 60})
        )
        assert waited["run"]["status"] == "review"
        assert any(e["text"] == "hi" for e in waited["events"] if e["type"] == "agent.message")


async def _pending_approval(rest: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    for _ in range(1000):
        rows = (await rest.get(f"/api/approvals?status=pending&run_id={run_id}")).json()["data"]
        if rows:
            return dict(rows[0])
        await asyncio.sleep(0.02)
    raise AssertionError(f"run {run_id} never asked for approval")


async def test_agent_token_delegation_lineage_budget_limits_and_approvals(
    live: Live, git_repo: Path
) -> None:
    async with live.rest() as rest:
        pol = await rest.post(
            "/api/policies",
            json={
                "name": "no curl",
                "rules": [{"tool": "Bash", "command": "curl *", "action": "deny"}],
            },
        )
        assert pol.status_code == 201, pol.text
        pset = await rest.post(
            "/api/policy-sets", json={"name": "base", "policy_ids": [pol.json()["id"]]}
        )
        set_id = pset.json()["id"]
        # The parent asks before its bash step (default mode) and so stays active, waiting.
        parent = await rest.post(
            "/api/runs",
            json={
                "prompt": "Parent work",
                "repo_path": str(git_repo),
                "provider": "script",
                "budget_usd": 1.0,
                "policy_set_ids": [set_id],
                "agent_options": {
                    "scenario": {"steps": [{"bash": "echo step > step.txt"}, {"say": "ok"}]},
                    "permission_mode": "default",
                },
            },
        )
        assert parent.status_code == 201, parent.text
        parent_id = parent.json()["id"]
        parent_approval = await _pending_approval(rest, parent_id)

    async with mcp_client(live, live.run_token(parent_id)) as agent:
        # The agent sees only its own run (and later its sub-runs).
        assert [r["id"] for r in out(await agent.call_tool("list_runs", {}))["runs"]] == [parent_id]
        too_much = await agent.call_tool("start_run", {"prompt": "Sub", "budget_usd": 0.9})
        assert "at most $0.5000" in error_text(too_much)

        child = out(await agent.call_tool("start_run", {"prompt": "Sub task"}))["run"]
        assert child["parent_run_id"] == parent_id
        assert child["delegation"]["depth"] == 1 and child["delegation"]["via"] == "mcp"
        assert child["budget_usd"] == pytest.approx(0.5)  # half of what the parent has left
        second = out(await agent.call_tool("start_run", {"prompt": "Sub 2"}))["run"]
        assert second["budget_usd"] == pytest.approx(0.25)  # half of the 0.5 still free
        third = await agent.call_tool("start_run", {"prompt": "Sub 3"})
        assert "Fan-out limit" in error_text(third)

        async with live.rest() as rest:
            row = (await rest.get(f"/api/runs/{child['id']}")).json()
            assert row["parent_run_id"] == parent_id and row["delegation"]["depth"] == 1
            assert set_id in (await _run_row(live, child["id"]))["policy_set_ids"]
            child_approval = await _pending_approval(rest, child["id"])

        # Its own approval: never.
        own = await agent.call_tool(
            "decide_approval", {"approval_id": parent_approval["id"], "decision": "approved"}
        )
        assert "cannot decide its own" in error_text(own)
        # Landing is for people.
        land = await agent.call_tool("land_run", {"run": child["id"]})
        assert "Agents cannot land" in error_text(land)

        async with mcp_client(live, live.run_token(child["id"])) as grandchild_agent:
            # A sub-run's agent cannot decide its ancestor's approval…
            upward = await grandchild_agent.call_tool(
                "decide_approval", {"approval_id": parent_approval["id"], "decision": "approved"}
            )
            assert "ancestor" in error_text(upward)
            # …nor see its sibling; and it may go one level deeper, not two.
            sibling = await grandchild_agent.call_tool("get_run", {"run": second["id"]})
            assert "not a sub-run" in error_text(sibling)
            deeper = out(await grandchild_agent.call_tool("start_run", {"prompt": "Deeper"}))["run"]
            assert deeper["delegation"]["depth"] == 2
            assert deeper["delegation"]["root_run_id"] == parent_id
            async with mcp_client(live, live.run_token(deeper["id"])) as deepest:
                refused = await deepest.call_tool("start_run", {"prompt": "Too deep"})
                assert "depth limit" in error_text(refused)

        # The parent's agent may answer its sub-run's approval.
        decided = out(
            await agent.call_tool(
                "decide_approval", {"approval_id": child_approval["id"], "decision": "approved"}
            )
        )
        assert decided["decided_by"] == f"run:{parent_id}"
        assert decided["approval"]["status"] == "approved"
        waited = out(
            await agent.call_tool(
                "wait_run", {"run": child["id"], "until": "completed", "timeout": 60}
            )
        )
        assert waited["run"]["status"] == "review"

    # Once the parent rests, its token stops working.
    async with live.rest() as rest:
        await rest.post(f"/api/runs/{parent_id}/cancel")
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as raw:
        resp = await raw.post(
            "/mcp", json={}, headers={"Authorization": f"Bearer {live.run_token(parent_id)}"}
        )
        assert resp.status_code == 401 and "only works while it runs" in resp.json()["detail"]


async def test_start_run_in_a_workspace_by_name_and_list_runs_by_it(
    live: Live, git_repo: Path
) -> None:
    """``start_run`` with a workspace takes its project and defaults as ``POST /api/runs``
    does, only for its owner or an admin; ``list_runs`` filters by it; an agent's sub-run
    stays in its parent's workspace."""
    asks = await script_profile(live, [{"bash": "echo hi > hi.txt"}], "default", "asks")
    says = await script_profile(live, [{"say": "done"}], name="says")
    async with live.rest() as rest:
        project = await rest.post(
            "/api/projects", json={"name": "web", "repos": [{"path": str(git_repo)}]}
        )
        assert project.status_code == 201, project.text
        body = {
            "name": "Team Web",
            "project_ids": [project.json()["id"]],
            "defaults": {"agent_id": says, "budget_usd": 0.75},
        }
        made = await rest.post("/api/workspaces", json=body)
        assert made.status_code == 201, made.text
        ws = made.json()
        outside = await rest.post(
            "/api/runs",
            json={"prompt": "Elsewhere", "project_id": project.json()["id"], "agent_id": says},
        )
        assert outside.status_code == 201, outside.text
        await rest.post("/api/users", json={"username": "mia", "password": "correct horse 9"})

    async with mcp_client(live) as client:
        # By name: the workspace's one project, its default profile and budget.
        started = out(
            await client.call_tool("start_run", {"prompt": "Hi", "workspace": "Team Web"})
        )
        run = started["run"]
        assert run["workspace_id"] == ws["id"] and run["budget_usd"] == 0.75
        done = out(
            await client.call_tool("wait_run", {"run": run["id"], "cursor": started["cursor"]})
        )
        assert done["run"]["status"] == "review"
        # By id, with the run's own profile winning over the default.
        asking = out(
            await client.call_tool(
                "start_run", {"prompt": "Ask", "workspace": ws["id"], "agent_id": asks}
            )
        )["run"]
        listed = out(await client.call_tool("list_runs", {"workspace": "Team Web"}))["runs"]
        assert [r["id"] for r in listed] == [asking["id"], run["id"]]
        everything = out(await client.call_tool("list_runs", {}))["runs"]
        assert outside.json()["id"] in {r["id"] for r in everything}
        unknown = await client.call_tool("start_run", {"prompt": "Hi", "workspace": "Nope"})
        assert "No workspace with the id or name 'Nope'" in error_text(unknown)
        unknown = await client.call_tool("list_runs", {"workspace": "Nope"})
        assert "No workspace" in error_text(unknown)

    waiting = await live.wait_status(asking["id"], "waiting")
    assert waiting["workspace_id"] == ws["id"]
    async with mcp_client(live, live.run_token(asking["id"])) as agent:
        sub = out(await agent.call_tool("start_run", {"prompt": "Sub", "agent_id": says}))["run"]
        assert sub["workspace_id"] == ws["id"] and sub["parent_run_id"] == asking["id"]
        mine = out(await agent.call_tool("list_runs", {"workspace": ws["id"]}))["runs"]
        assert {r["id"] for r in mine} == {asking["id"], sub["id"]}

    # Another user may not run in the admin's workspace.
    async with httpx.AsyncClient(base_url=live.url, timeout=30) as mia:
        login = await mia.post(
            "/api/auth/login", json={"username": "mia", "password": "correct horse 9"}
        )
        assert login.status_code == 200, login.text
        mia.headers["X-CSRF-Token"] = login.json()["csrf_token"]
        made = await mia.post(
            "/api/tokens", json={"name": "mcp", "scopes": ["runs:read", "runs:write"]}
        )
        assert made.status_code == 201, made.text
    async with mcp_client(live, made.json()["token"]) as other:
        refused = await other.call_tool("start_run", {"prompt": "Hi", "workspace": "Team Web"})
        assert "belongs to another user" in error_text(refused)
    async with live.rest() as rest:
        await rest.post(f"/api/runs/{asking['id']}/cancel")


async def test_the_stdio_offer_relays_from_inside_the_runs_sandbox(
    live: Live, git_repo: Path
) -> None:
    """What an ACP agent without MCP over HTTP is given (``codeyard_mcp: "stdio"``): the
    ``codeyard mcp`` command, started here as the agent would start it — inside the run's
    bubblewrap sandbox, with the agent's allowlisted environment plus the entry's own — reaches
    the server and speaks for the run (a sub-run with its lineage). The token is in that
    environment only: not on the command line, not in the worktree."""
    from codeyard.agents.mcp_servers import STDIO_KEY
    from codeyard.mcp_server import offer
    from codeyard.sandbox import contain
    from codeyard.services import sandbox as sandbox_service

    agent = await script_profile(live, [{"bash": "echo step > step.txt"}], mode="default")
    async with live.rest() as rest:
        created = await rest.post(
            "/api/runs", json={"prompt": "Parent", "repo_path": str(git_repo), "agent_id": agent}
        )
        assert created.status_code == 201, created.text
    parent = await live.wait_status(created.json()["id"], "waiting")
    row = await _run_row(live, parent["id"])
    options = offer.hook(live.settings)(row, {"codeyard_mcp": "stdio"})
    assert "mcp_servers" not in options  # no HTTP entry: the command only
    entry = options[STDIO_KEY][offer.SERVER_NAME]
    token = entry["env"]["CODEYARD_TOKEN"]
    assert token.startswith("cy_run_") and token not in json.dumps(entry["args"])

    worktree = Path(next(iter(row["worktrees"].values())))
    sandbox = sandbox_service.base(live.settings).for_run([worktree], None)
    contained = contain(sandbox, "gemini", [entry["command"], *entry["args"]], cwd=worktree)
    assert contained.contained  # bubblewrap: the data dir and other runs are out of sight
    assert str(live.settings.data_dir.resolve()) in contained.options
    env = {**contained.env, **entry["env"]}
    params = StdioServerParameters(command=contained.argv[0], args=contained.argv[1:], env=env)
    with anyio.fail_after(60):
        async with Client(params) as client:
            assert {t.name for t in (await client.list_tools()).tools} == TOOLS
            child = out(await client.call_tool("start_run", {"prompt": "Sub task"}))["run"]
            assert child["parent_run_id"] == parent["id"]
            assert child["delegation"]["via"] == "mcp"
            mine = out(await client.call_tool("list_runs", {}))["runs"]
            assert {r["id"] for r in mine} == {parent["id"], child["id"]}
    assert token not in "\n".join(
        f.read_text(errors="ignore") for f in worktree.rglob("*") if f.is_file()
    )
    async with live.rest() as rest:
        for run_id in (child["id"], parent["id"]):
            await rest.post(f"/api/runs/{run_id}/cancel")


async def _run_row(live: Live, run_id: str) -> dict[str, Any]:
    from codeyard.store import runs

    async with live.app.state.services.engine.connect() as conn:
        return dict(await runs.get(conn, run_id))


def test_tool_output_schemas_are_json_schema_objects() -> None:
    from codeyard.mcp_server.server import build

    server = build()
    tools = asyncio.run(server.list_tools())
    for tool in tools:
        assert tool.output_schema is not None and tool.output_schema["type"] == "object"
        json.dumps(tool.output_schema)
