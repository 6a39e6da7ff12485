"""A model the agent cannot reach fails the turn after ``model_unreachable_seconds`` with the
CLI's own message, instead of leaving the run ``running`` for ever (issue 14: Codex pointed at
a base URL that answers nothing kept saying "Reconnecting... waiting for network").

The real Codex and Claude Code binaries; their model address is a closed loopback port, so
nothing is mocked.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from codeyard.agents.claude import ClaudeCodeProvider
from codeyard.agents.codex import CodexProvider
from codeyard.config import Settings
from tests.clis.support import events
from tests.conftest import TOKEN, Api, open_api

pytestmark = pytest.mark.anyio
_PROBLEM = CodexProvider().problem()


_CLAUDE_PROBLEM = ClaudeCodeProvider().problem()


def _needs(label: str, problem: str | None) -> None:
    if problem is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{label} must run in CI: {problem}")
    pytest.skip(f"{label} cannot run here: {problem}")


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    settings = Settings(data_dir=tmp_path / "data", admin_token=TOKEN, model_unreachable_seconds=4)
    async for client in open_api(settings):
        yield client


async def test_codex_that_cannot_reach_its_model_fails_the_turn(
    api: Api, tmp_path: Path, git_repo: Path
) -> None:
    _needs("Codex", _PROBLEM)
    home = tmp_path / "codex-home"
    home.mkdir()
    # The obvious first attempt from the issue, with the retries Codex would do anyway.
    options: dict[str, Any] = {
        "env": {
            "OPENAI_BASE_URL": f"http://127.0.0.1:{closed_port()}/v1",
            "OPENAI_API_KEY": "fake",
            "CODEX_HOME": str(home),
        }
    }
    resp = await api.post(
        "/api/runs",
        json={
            "prompt": "Say hi",
            "repo_path": str(git_repo),
            "provider": "codex",
            "model": "gpt-5-codex",
            "agent_options": options,
        },
    )
    assert resp.status_code == 201, resp.text
    run = resp.json()
    started = time.monotonic()
    done = await api.wait_status(run["id"], "failed", "review", timeout=90)
    elapsed = time.monotonic() - started
    assert done["status"] == "failed", done
    reason = done["status_reason"]
    assert reason.startswith("The model could not be reached for 4 s; the agent said: ")
    assert "Reconnecting" in reason  # Codex's own words
    assert elapsed >= 4
    retries = [e for e in await events(api, run["id"]) if e["type"] == "error"]
    assert any("Codex will retry" in e["data"]["message"] for e in retries)


async def test_claude_code_that_cannot_reach_its_model_fails_the_turn(
    api: Api, tmp_path: Path, git_repo: Path
) -> None:
    """Claude Code retries ten times, backing off to minutes (``system/api_retry`` lines)."""
    _needs("Claude Code", _CLAUDE_PROBLEM)
    options: dict[str, Any] = {
        "env": {
            "ANTHROPIC_BASE_URL": f"http://127.0.0.1:{closed_port()}",
            "ANTHROPIC_API_KEY": "fake",
            "HOME": str(tmp_path / "claude-home"),
            "DISABLE_AUTOUPDATER": "1",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        }
    }
    resp = await api.post(
        "/api/runs",
        json={
            "prompt": "Say hi",
            "repo_path": str(git_repo),
            "provider": "claude-code",
            "model": "claude-sonnet-4-5",
            "agent_options": options,
        },
    )
    assert resp.status_code == 201, resp.text
    run = resp.json()
    started = time.monotonic()
    done = await api.wait_status(run["id"], "failed", "review", timeout=90)
    elapsed = time.monotonic() - started
    assert done["status"] == "failed", done
    reason = done["status_reason"]
    assert reason.startswith("The model could not be reached for 4 s; the agent said: ")
    assert "Claude Code could not reach its model API (attempt " in reason
    assert elapsed >= 4
    retries = [e["data"] for e in await events(api, run["id"]) if e["type"] == "error"]
    assert retries and all("attempt" in e["message"] for e in retries)
