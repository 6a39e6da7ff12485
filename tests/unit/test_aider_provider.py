"""The ``aider`` provider's set-up: finding aider's own venv, the fix when it is missing, and
how the bridge is started (no real aider here: ``tests/clis/test_aider.py`` runs it)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from codeyard.agents.aider import AiderProvider
from codeyard.agents.aider.provider import BRIDGE
from codeyard.agents.base import AgentFailure
from tests.unit.test_acp_providers import context


def fake_python(folder: Path, version: str = "0.86.2") -> Path:
    """A stand-in for the venv's Python that 'imports aider' by printing a version."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "python"
    path.write_text(f"#!/bin/sh\necho {version}\n")
    path.chmod(0o755)
    return path


def test_a_missing_venv_says_to_run_make_aider(tmp_path: Path) -> None:
    provider = AiderProvider(python=tmp_path / "none" / "python")
    assert provider.command() is None and provider.version() is None
    problem = provider.problem()
    assert problem is not None and "make aider" in problem and "clis/py/aider" in problem


def test_a_python_without_aider_is_a_problem_naming_it() -> None:
    # Codeyard's own Python has the ACP SDK but not aider, which must never be installed there.
    problem = AiderProvider(python=Path(sys.executable)).problem()
    assert problem is not None and "aider or the ACP SDK is missing" in problem
    assert "make aider" in problem


def test_the_bridge_runs_with_the_venv_python_and_the_run_model(tmp_path: Path) -> None:
    python = fake_python(tmp_path / "venv" / "bin")
    provider = AiderProvider(python=python)
    assert provider.problem() is None and provider.version() == "0.86.2"
    launch = provider.launch(context(tmp_path, "openai/gpt-4.1", env={"AIDER_ANALYTICS": "x"}))
    assert launch.argv == [str(python), str(BRIDGE), "--model", "openai/gpt-4.1"]
    assert launch.label == "Aider" and launch.cli_version == "0.86.2"
    assert launch.env["AIDER_CHECK_UPDATE"] == "false"
    assert launch.env["AIDER_ANALYTICS"] == "x", "the operator's environment wins"


def test_a_run_needs_a_model(tmp_path: Path) -> None:
    provider = AiderProvider(python=fake_python(tmp_path / "bin"))
    with pytest.raises(AgentFailure, match="Aider needs a model"):
        provider.launch(context(tmp_path, None))


def test_a_configured_command_replaces_the_venv(tmp_path: Path) -> None:
    other = fake_python(tmp_path / "other")
    provider = AiderProvider(python=tmp_path / "none")
    launch = provider.launch(context(tmp_path, "m", command=[str(other), "bridge.py"]))
    assert launch.argv == [str(other), "bridge.py", "--model", "m"]
