"""Runs of the real Claude Code binary against the fake model server, through the API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from codeyard.testing.fake_llm import FakeLLM
from tests.conftest import Api

MODEL = "claude-sonnet-4-5"
WAIT = 90.0


def options(fake: FakeLLM, home: Path, **extra: Any) -> dict[str, Any]:
    env = {
        "ANTHROPIC_BASE_URL": fake.url,
        "ANTHROPIC_API_KEY": "test",
        "HOME": str(home),  # sessions and settings stay in the test's directory
        "CLAUDE_CODE_MAX_RETRIES": "0",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    return {"env": env, **extra}


async def create(
    api: Api, repo: Path, opts: dict[str, Any], prompt: str, **extra: Any
) -> dict[str, Any]:
    body = {
        "prompt": prompt,
        "repo_path": str(repo),
        "provider": "claude-code",
        "model": MODEL,
        "agent_options": opts,
        **extra,
    }
    resp = await api.post("/api/runs", json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()
