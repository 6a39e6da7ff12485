"""Codex and ACP agents (the real CLIs), offered Codeyard's MCP server by their profile, start a
governed sub-run: the fake model scripts the call of ``start_run`` under the name the CLI gives
MCP tools, the CLI calls the server's ``/mcp`` with its run token (Codex: from the environment
variable its ``mcp_servers`` configuration names; ACP: from ``session/new``'s ``mcpServers``),
and the sub-run appears with its lineage and budget slice. Claude Code's case is
``test_claude_mcp.py``.

Every ACP agent here speaks MCP over HTTP (``mcpCapabilities.http``: Gemini CLI, Qwen Code,
OpenCode, codex-acp, …), so the path for one that does not — Codeyard's server as the command
``codeyard mcp``, started by the agent inside the run's sandbox with the run token in its
environment — is taken by Gemini CLI with ``codeyard_mcp: "stdio"`` (``gemini-stdio``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from codeyard.agents.acp import GeminiProvider, OpenCodeProvider
from codeyard.agents.base import Provider
from codeyard.agents.codex import CodexProvider
from codeyard.testing.fake_llm import FakeLLM, Reply, ToolCall
from tests.clis.acp_cases import gemini_options, opencode_options
from tests.clis.acp_support import require
from tests.clis.agent_cases import codex_options
from tests.support.live_app import Live

pytestmark = pytest.mark.anyio


@dataclass(frozen=True)
class Case:
    provider: Callable[[], Provider]
    model: str
    #: The name the CLI gives the model for Codeyard's ``start_run`` tool.
    tool: str
    #: Codex groups each MCP server's tools in a Responses ``namespace`` tool.
    namespace: str | None
    api: str
    #: The tool's name in the run's events (``tool.call``): ACP agents name no tool, only a
    #: kind (``other``) and a title.
    recorded: str
    options: Callable[..., dict[str, Any]]
    #: The profile's provider (default: the case's name) and its ``codeyard_mcp``.
    provider_name: str | None = None
    opt_in: Any = True


CASES = {
    "codex": Case(
        provider=CodexProvider,
        model="gpt-5-codex",
        tool="start_run",
        namespace="mcp__codeyard",
        api="openai-responses",
        recorded="mcp__codeyard__start_run",
        options=codex_options,
    ),
    "gemini": Case(
        provider=GeminiProvider,
        model="gemini-2.5-pro",
        tool="mcp_codeyard_start_run",
        namespace=None,
        api="gemini",
        recorded="other",
        options=gemini_options,
    ),
    "gemini-stdio": Case(
        provider=GeminiProvider,
        model="gemini-2.5-pro",
        tool="mcp_codeyard_start_run",
        namespace=None,
        api="gemini",
        recorded="other",
        options=gemini_options,
        provider_name="gemini",
        opt_in="stdio",
    ),
    "opencode": Case(
        provider=OpenCodeProvider,
        model="fake/fake-model",
        tool="codeyard_start_run",
        namespace=None,
        api="openai-chat",
        recorded="other",
        options=opencode_options,
    ),
}


@pytest.mark.parametrize(
    "name",
    # Gemini CLI and OpenCode take 20-40 s each here: the slow phase.
    [pytest.param(n, marks=[pytest.mark.slow] if n != "codex" else []) for n in sorted(CASES)],
)
async def test_agent_starts_a_sub_run_through_codeyard_mcp(
    name: str, live: Live, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    case = CASES[name]
    require(case.provider())
    start = {
        "prompt": f"Sub task from {name}",
        "provider": "script",
        "budget_usd": 0.2,
        "wait": True,
        "wait_timeout": 60,
    }
    fake.script(
        [
            Reply(
                text="I will delegate this.",
                tool_calls=(ToolCall(case.tool, start, namespace=case.namespace),),
            ),
            Reply(text="Delegated."),
        ]
    )
    async with live.rest() as rest:
        profile = await rest.post(
            "/api/agents",
            json={
                "name": f"delegating {name}",
                "provider": case.provider_name or name,
                "model": case.model,
                "permission_mode": "auto",
                "provider_config": case.options(fake, tmp_path / "home", codeyard_mcp=case.opt_in),
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

    async with live.rest() as rest:
        runs = (await rest.get("/api/runs")).json()["data"]
        children = [r for r in runs if r["parent_run_id"] == parent_id]
        assert len(children) == 1, (runs, [c.body for c in fake.model_calls()][-1:])
        child = children[0]
        assert child["provider"] == "script" and child["prompt"] == f"Sub task from {name}"
        assert child["delegation"]["via"] == "mcp" and child["delegation"]["depth"] == 1
        assert child["budget_usd"] == pytest.approx(0.2)
        assert child["status"] == "review"  # start_run waited for it
        evs = (await rest.get(f"/api/runs/{parent_id}/events?limit=500")).json()["data"]
    # The sub-run's id came back to the model in the tool's result.
    assert child["id"] in json.dumps(fake.model_calls(case.api)[-1].body)
    calls = [e["data"] for e in evs if e["type"] == "tool.call"]
    assert [c["tool"] for c in calls] == [case.recorded], calls
    assert "start_run" in calls[0]["title"], calls
    decisions = [e["data"]["decision"] for e in evs if e["type"] == "policy.decision"]
    # Every CLI asks before the MCP call, so Codeyard's policy decides it (OpenCode because
    # Codeyard's configuration lists the server's tools among those to ask about).
    assert decisions == ["allow"], decisions
    assert [e["data"]["text"] for e in evs if e["type"] == "agent.message"][-1] == "Delegated."
    # The run token is never stored: not in the run row, the profile, nor in any event; nor
    # written into the worktree.
    assert "cy_run_" not in json.dumps(evs) and "cy_run_" not in json.dumps(parent)
    for worktree in parent["worktrees"].values():
        written = [f.read_text(errors="ignore") for f in Path(worktree).rglob("*") if f.is_file()]
        assert not any("cy_run_" in text for text in written), worktree


async def test_a_policy_denying_the_mcp_tool_stops_codexs_sub_run(
    live: Live, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    """Codex's MCP tool approval (an elicitation) declined by Codeyard's policy: no sub-run,
    and the model is told why."""
    case = CASES["codex"]
    require(case.provider())
    start = {"prompt": "Sneaky", "provider": "script", "wait": False}
    fake.script(
        [
            Reply(tool_calls=(ToolCall(case.tool, start, namespace=case.namespace),)),
            Reply(text="Understood."),
        ]
    )
    rule = {"tool": "mcp__codeyard__start_run", "action": "deny", "reason": "no delegation"}
    async with live.rest() as rest:
        policy = await rest.post("/api/policies", json={"name": "no mcp", "rules": [rule]})
        assert policy.status_code == 201, policy.text
        pset = await rest.post(
            "/api/policy-sets", json={"name": "no mcp", "policy_ids": [policy.json()["id"]]}
        )
        created = await rest.post(
            "/api/runs",
            json={
                "prompt": "Split the work",
                "repo_path": str(git_repo),
                "provider": "codex",
                "model": case.model,
                "agent_options": case.options(fake, tmp_path / "home", codeyard_mcp=True),
                "policy_set_ids": [pset.json()["id"]],
            },
        )
        assert created.status_code == 201, created.text
    parent_id = created.json()["id"]
    parent = await live.wait_status(parent_id, "review", "failed")
    assert parent["status"] == "review", parent
    async with live.rest() as rest:
        runs = (await rest.get("/api/runs")).json()["data"]
        evs = (await rest.get(f"/api/runs/{parent_id}/events?limit=500")).json()["data"]
    assert [r["id"] for r in runs] == [parent_id]  # no sub-run
    decisions = [e["data"] for e in evs if e["type"] == "policy.decision"]
    assert [d["decision"] for d in decisions] == ["deny"], decisions
    assert "no delegation" in json.dumps(fake.model_calls(case.api)[-1].body)
