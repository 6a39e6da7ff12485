"""What every real-CLI test shares: the scripted model server each test talks to."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from codeyard.agents.claude import ClaudeCodeProvider
from codeyard.testing.fake_llm import FakeLLM


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
