"""The real Claude Code binary, offered Codeyard's MCP server by its profile, starts a governed
sub-run: the fake model scripts the ``mcp__codeyard__start_run`` call, Claude Code calls the
server's ``/mcp`` with its run token, and the sub-run appears with its lineage and budget slice.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from codeyard.agents.claude import ClaudeCodeProvider
from codeyard.testing.fake_llm import FakeLLM, Reply, ToolCall
from tests.support.live_app import Live

pytestmark = pytest.mark.anyio

MODEL = "claude-sonnet-4-5"
_PROBLEM = ClaudeCodeProvider().problem()


@pytest.fixture(autouse=True)
def _needs_claude() -> None:
    if _PROBLEM is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"Claude Code must run in CI: {_PROBLEM}")
    pytest.skip(f"Claude Code cannot run here: {_PROBLEM}")


async def test_claude_code_starts_a_sub_run_through_codeyard_mcp(
    live: Live, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    fake.script(
        [
            Reply(
                text="I will delegate this.",
                tool_calls=(
                    ToolCall(
                        "mcp__codeyard__start_run",
                        {
                            "prompt": "Sub task from Claude",
                            "provider": "script",
                            "budget_usd": 0.2,
                            "wait": True,
                            "wait_timeout": 60,
                        },
                    ),
                ),
            ),
            Reply(text="Delegated."),
        ]
    )
    env = {
        "ANTHROPIC_BASE_URL": fake.url,
        "ANTHROPIC_API_KEY": "test",
        "HOME": str(tmp_path / "home"),
        "CLAUDE_CODE_MAX_RETRIES": "0",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        # MCP tools are sent to the model in full rather than deferred behind ToolSearch, so
        # the scripted model can call start_run in its first answer.
        "ENABLE_TOOL_SEARCH": "false",
    }
    async with live.rest() as rest:
        profile = await rest.post(
            "/api/agents",
            json={
                "name": "delegating claude",
                "provider": "claude-code",
                "model": MODEL,
                "permission_mode": "auto",
                "provider_config": {"env": env, "codeyard_mcp": True},
            },
        )
        assert profile.status_code == 201, profile.text
        created = await rest.post(
            "/api/runs",
            json={
                "prompt": "Split the work",
                "repo_path": str(git_repo),
                "agent_id": profile.json()["id"],
                "budget_usd": 1.0,
            },
        )
        assert created.status_code == 201, created.text
    parent_id = created.json()["id"]
    parent = await live.wait_status(parent_id, "review", "failed")
    assert parent["status"] == "review", parent

    # Claude Code was offered the tool (its MCP client listed Codeyard's tools to the model).
    first = fake.model_calls("anthropic")[0]
    offered = [t.get("name") for t in first.body.get("tools", [])]
    assert "mcp__codeyard__start_run" in offered and "mcp__codeyard__wait_run" in offered

    async with live.rest() as rest:
        runs = (await rest.get("/api/runs")).json()["data"]
        children = [r for r in runs if r["parent_run_id"] == parent_id]
        assert len(children) == 1, runs
        child = children[0]
        assert child["provider"] == "script" and child["prompt"] == "Sub task from Claude"
        assert child["delegation"]["via"] == "mcp" and child["delegation"]["depth"] == 1
        assert child["budget_usd"] == pytest.approx(0.2)
        assert child["status"] == "review"  # start_run waited for it
        evs = (await rest.get(f"/api/runs/{parent_id}/events?limit=500")).json()["data"]
    calls = [e["data"] for e in evs if e["type"] == "tool.call"]
    assert [c["tool"] for c in calls] == ["mcp__codeyard__start_run"]
    decisions = [e["data"]["decision"] for e in evs if e["type"] == "policy.decision"]
    assert decisions == ["allow"]  # the MCP call passed Codeyard's policy like any tool call
    results = [e["data"] for e in evs if e["type"] == "tool.result"]
    assert results and results[0]["ok"], results
    assert child["id"] in json.dumps(results[0])
    assert [e["data"]["text"] for e in evs if e["type"] == "agent.message"][-1] == "Delegated."
    # The run token is never stored: not in the run row nor in any event.
    assert "cy_run_" not in json.dumps(evs) and "cy_run_" not in json.dumps(parent)


async def test_rag_enabled_snippets_reach_claude_codes_system_prompt(
    live: Live, fake: FakeLLM, tmp_path: Path
) -> None:
    from tests.conftest import make_repo

    repo = make_repo(
        tmp_path / "repo",
        {"billing/invoice.py": "def computeInvoiceTotal(lines):\n    return 0  # PLANTED-7731\n"},
    )
    fake.script([Reply(text="Looked.")])
    env = {
        "ANTHROPIC_BASE_URL": fake.url,
        "ANTHROPIC_API_KEY": "test",
        "HOME": str(tmp_path / "home"),
        "CLAUDE_CODE_MAX_RETRIES": "0",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    async with live.rest() as rest:
        project = (
            await rest.post("/api/projects", json={"name": "b", "repos": [{"path": str(repo)}]})
        ).json()
        await rest.post(f"/api/projects/{project['id']}/index-rag")
        created = await rest.post(
            "/api/runs",
            json={
                "prompt": "Fix the invoice total",
                "project_id": project["id"],
                "provider": "claude-code",
                "model": MODEL,
                "rag_enabled": True,
                "agent_options": {"env": env},
            },
        )
        assert created.status_code == 201, created.text
    done = await live.wait_status(created.json()["id"], "review", "failed")
    assert done["status"] == "review", done
    system = json.dumps(fake.model_calls("anthropic")[0].body["system"])
    assert "Relevant code found by Codeyard" in system and "PLANTED-7731" in system
