"""The utility model through the real Claude Code CLI (``claude -p --json-schema``) against the
fake model server: structured answer, the CLI's reported cost recorded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from codeyard.testing.fake_llm import FakeLLM
from codeyard.testing.fake_llm.script import parse_replies
from tests.clis import test_claude_code as claude
from tests.conftest import Api, make_repo

pytestmark = pytest.mark.anyio


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


async def test_run_names_through_claude_p(sqlite_api: Api, fake: FakeLLM, tmp_path: Path) -> None:
    api = sqlite_api
    env = {
        "ANTHROPIC_BASE_URL": fake.url,
        "ANTHROPIC_API_KEY": "sk-cli",
        "HOME": str(tmp_path / "home"),
        "CLAUDE_CODE_MAX_RETRIES": "0",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    env_set = (
        await api.post("/api/env-sets", json={"name": "claude-login", "variables": env})
    ).json()
    config = {"backend": "claude-cli", "model": claude.MODEL, "env_set_id": env_set["id"]}
    assert (
        await api.client.put("/api/settings/utility-model", json={"config": config})
    ).status_code == 200

    repo = make_repo(tmp_path / "site")
    run = (
        await api.post(
            "/api/runs",
            json={
                "prompt": "Add CSV export",
                "repo_path": str(repo),
                "provider": "script",
                "agent_options": {"scenario": {"steps": []}},
            },
        )
    ).json()
    await api.wait_status(run["id"], "review")
    answer = {"title": "Add CSV export", "branch": "csv-export"}
    fake.script(
        parse_replies(
            [{"tool_calls": [{"name": "StructuredOutput", "input": answer}]}, {"text": "ok"}]
        )[0]
    )
    resp = await api.post(f"/api/runs/{run['id']}/suggest-names")
    assert resp.status_code == 200, resp.text
    assert resp.json()["branch"] == "csv-export" and resp.json()["attempts"] == 1
    first = fake.model_calls("anthropic")[0]
    assert first.headers.get("x-api-key") == "sk-cli" and "Add CSV export" in first.text()
    spent = (await api.get("/api/settings/utility-model")).json()["usage"]
    assert spent["calls"] == 1 and spent["cost_usd"] and spent["cost_usd"] > 0
