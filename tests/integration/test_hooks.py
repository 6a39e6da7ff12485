"""Claude Code hook payloads recorded on a run whose CLI runs outside Codeyard (payload shapes
as Claude Code sends them on its hooks' stdin)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Api

pytestmark = pytest.mark.anyio
SESSION = "0d5c2c8e-hook-test"


async def test_hooks_become_the_runs_events(sqlite_api: Api, git_repo: Path) -> None:
    api = sqlite_api
    draft = await api.post(
        "/api/runs",
        json={
            "prompt": "Outside CLI",
            "repo_path": str(git_repo),
            "provider": "claude-code",
            "draft": True,
        },
    )
    assert draft.status_code == 201, draft.text
    run_id = draft.json()["id"]
    base = {"session_id": SESSION, "cwd": str(git_repo), "transcript_path": "/tmp/t.jsonl"}
    calls = [
        {**base, "hook_event_name": "SessionStart", "source": "startup"},
        {**base, "hook_event_name": "UserPromptSubmit", "prompt": "List the files"},
        {
            **base,
            "hook_event_name": "PreToolUse",
            "tool_name": "Bash",
            "tool_input": {"command": "ls -1", "description": "List"},
            "tool_use_id": "toolu_01",
        },
        {
            **base,
            "hook_event_name": "PostToolUse",
            "tool_name": "Bash",
            "tool_input": {"command": "ls -1"},
            "tool_use_id": "toolu_01",
            "tool_response": {"stdout": "README.md", "stderr": "", "interrupted": False},
        },
        {**base, "hook_event_name": "Stop", "stop_hook_active": False},
    ]
    recorded = []
    for payload in calls[:2]:
        resp = await api.post(f"/api/runs/{run_id}/hook", json=payload)
        assert resp.status_code == 200, resp.text
        recorded += resp.json()["recorded"]
    for payload in calls[2:]:  # found by session id from here on
        resp = await api.post("/api/hooks/claude", json=payload)
        assert resp.status_code == 200, resp.text
        assert resp.json()["run_id"] == run_id
        recorded += resp.json()["recorded"]
    assert recorded == ["agent.session", "user.message", "tool.call", "tool.result"]
    run = (await api.get(f"/api/runs/{run_id}")).json()
    assert run["session_id"] == SESSION and run["status"] == "draft"
    (cmd,) = (await api.get(f"/api/runs/{run_id}/commands")).json()["data"]
    assert cmd["command"] == "ls -1" and "README.md" in cmd["output_tail"]
    unknown = await api.post(
        "/api/hooks/claude", json={"hook_event_name": "Stop", "session_id": "x"}
    )
    assert unknown.status_code == 404 and "POST /api/runs/{id}/hook" in unknown.json()["detail"]


async def test_a_run_codeyard_drives_refuses_hooks(sqlite_api: Api, git_repo: Path) -> None:
    api = sqlite_api
    created = await api.post(
        "/api/runs",
        json={
            "prompt": "Busy",
            "repo_path": str(git_repo),
            "provider": "script",
            "agent_options": {
                "permission_mode": "default",
                "scenario": {"steps": [{"bash": "touch x"}]},
            },
        },
    )
    run_id = created.json()["id"]
    await api.wait_status(run_id, "waiting")
    refused = await api.post(
        f"/api/runs/{run_id}/hook", json={"hook_event_name": "UserPromptSubmit", "prompt": "hi"}
    )
    assert refused.status_code == 409 and "started outside Codeyard" in refused.json()["detail"]
    await api.post(f"/api/runs/{run_id}/cancel")
