"""A model the agent cannot reach fails the turn after ``model_unreachable_seconds`` with the
CLI's own message, instead of leaving the run ``running`` for ever (issue 14: Codex pointed at
a base URL that answers nothing kept saying "Reconnecting... waiting for network").

The real Codex and Claude Code binaries, and every ACP agent; their model address is a closed
loopback port, so nothing is mocked.
"""

from __future__ import annotations

import json
import os
import socket
import time
import types
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest

from codeyard.agents.claude import ClaudeCodeProvider
from codeyard.agents.codex import CodexProvider
from codeyard.config import Settings
from codeyard.testing.fake_llm import FakeLLM
from tests.clis import acp_cases
from tests.clis import acp_support as acp
from tests.clis.agent_cases import AgentCase
from tests.clis.support import events
from tests.conftest import TOKEN, Api, open_api, running_api

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


def _as_a_user_would(case: AgentCase, home: Path) -> dict[str, Any]:
    """The offline recipe of ``case`` pointed at a closed port, less the retry limits the
    contract suite sets (a user would not have them): each CLI retries as it does by default."""
    dead = cast(FakeLLM, types.SimpleNamespace(url=f"http://127.0.0.1:{closed_port()}"))
    options = case.options(dead, home)
    if case.name == "gemini":
        settings = home / ".gemini" / "settings.json"
        saved = json.loads(settings.read_text())
        saved.pop("general")
        settings.write_text(json.dumps(saved))
    elif case.name == "codex-acp":
        provider = dict(options["config"]["model_providers.fake"])
        del provider["request_max_retries"], provider["stream_max_retries"]
        options["config"] = {**options["config"], "model_providers.fake": provider}
    elif case.name == "claude-acp":
        del options["env"]["CLAUDE_CODE_MAX_RETRIES"]
    return options


#: ACP agents that give up on a dead model by themselves before the limit, with their words.
FAILS_BY_ITSELF = {"qwen": "Qwen Code failed the turn: Internal error: Connection error."}


@pytest.mark.slow
@pytest.mark.parametrize("case", acp_cases.CASES, ids=[c.name for c in acp_cases.CASES])
async def test_an_acp_agent_that_cannot_reach_its_model_fails_the_turn(
    case: AgentCase, tmp_path: Path, git_repo: Path
) -> None:
    """Pointed at a closed port, Gemini CLI, OpenCode, Kilo and Claude Code's adapter retried
    silently for more than 75 s (the run stayed ``running``); Copilot CLI went quiet, then ended
    the turn as if it had worked (``review``); Codex's adapter gave up by itself after five
    reconnects (~25 s); Qwen Code fails at once (``FAILS_BY_ITSELF``). None says it retries on
    the protocol, so the ACP turn fails after ``model_unreachable_seconds`` of nothing from the
    agent while it is in a model call."""
    acp.require(case.provider())
    limit = 5
    settings = Settings(
        data_dir=tmp_path / "data", admin_token=TOKEN, model_unreachable_seconds=limit
    )
    options = _as_a_user_would(case, tmp_path / "home")
    async with running_api(settings) as api:
        run = await acp.create(api, git_repo, case.name, case.model, options, "Say hi")
        started = time.monotonic()
        done = await api.wait_status(run["id"], "failed", "review", timeout=60)
        elapsed = time.monotonic() - started
        assert done["status"] == "failed", done
        reason = done["status_reason"]
        if case.name in FAILS_BY_ITSELF:
            assert reason.startswith(FAILS_BY_ITSELF[case.name]), reason
        else:
            assert reason.startswith(f"The model could not be reached for {limit} s: {case.label}")
            assert elapsed >= limit
        failures = [e["data"] for e in await events(api, run["id"]) if e["type"] == "error"]
        assert failures[-1]["message"] == reason
