"""What every real-CLI test shares: the scripted model server each test talks to."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from codeyard.agents.claude import ClaudeCodeProvider
from codeyard.config import Settings
from codeyard.testing.fake_llm import FakeLLM
from tests.conftest import TOKEN
from tests.support.live_app import Live, serve
from tests.support.server import free_port


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


@pytest.fixture
def needs_claude() -> None:
    """Skip where Claude Code cannot run; in CI its absence is a failure, never a skip."""
    problem = ClaudeCodeProvider().problem()
    if problem is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"Claude Code must run in CI: {problem}")
    pytest.skip(f"Claude Code cannot run here: {problem}")


#: The agent CLIs here are third-party programs with races of their own (seen in full runs:
#: Qwen Code's shell result without the command's stdout, Codex's nested bubblewrap failing to
#: map its uid): each real-CLI test may run once more. A Codeyard fault fails twice, and a
#: rerun shows as ``R`` in the progress line and in the summary, so none goes unseen.
CLI_RERUNS = 1


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here) and item.get_closest_marker("flaky") is None:
            item.add_marker(pytest.mark.flaky(reruns=CLI_RERUNS))


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    """The app under Uvicorn on a free port: for agents that reach Codeyard over HTTP (MCP)."""
    settings = Settings(
        data_dir=tmp_path / "data", admin_token=TOKEN, port=free_port(), bash_timeout_seconds=30
    )
    async with serve(settings) as server:
        yield server
