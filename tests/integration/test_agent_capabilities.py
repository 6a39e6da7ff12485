"""What an agent cannot do is refused by the API, never silently ignored (issue 23): a run
budget on a provider whose agent reports no token usage could never be enforced."""

from __future__ import annotations

from pathlib import Path

import pytest

from codeyard.agents import registry
from tests.conftest import Api

pytestmark = pytest.mark.anyio


async def test_a_budget_on_an_agent_without_usage_is_refused_and_nothing_is_created(
    sqlite_api: Api, git_repo: Path
) -> None:
    api = sqlite_api
    body = {"prompt": "Hi", "repo_path": str(git_repo), "provider": "codex-acp"}
    resp = await api.post("/api/runs", json={**body, "budget_usd": 1.5})
    assert resp.status_code == 422, resp.text
    problem = resp.json()
    assert "reports no token usage" in problem["detail"] and "qwen" in problem["detail"]
    assert problem["errors"][0]["loc"] == ["body", "budget_usd"]
    assert (await api.get("/api/runs")).json()["data"] == []
    assert (await api.get("/api/projects")).json()["data"] == [], "nothing half-created"
    # What GET /api/providers reports as each provider's capabilities.
    assert registry.get("codex-acp").capabilities.as_dict()["usage"] is False
    assert registry.get("qwen").capabilities.as_dict()["usage"] is True


async def test_a_budget_on_an_agent_that_reports_usage_is_kept(
    sqlite_api: Api, git_repo: Path
) -> None:
    body = {"prompt": "Hi", "repo_path": str(git_repo), "provider": "script", "budget_usd": 2.0}
    body["agent_options"] = {"scenario": {"steps": [{"say": "hi"}]}}
    resp = await sqlite_api.post("/api/runs", json=body)
    assert resp.status_code == 201, resp.text
    assert resp.json()["budget_usd"] == 2.0
