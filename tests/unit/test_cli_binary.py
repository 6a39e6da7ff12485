"""One description of an agent CLI binary: where it is found, its version, what to do when not."""

from __future__ import annotations

from pathlib import Path

import pytest

from codeyard.agents.binary import CliBinary
from codeyard.agents.claude.process import CLAUDE
from codeyard.agents.codex.process import CODEX


def script(path: Path, body: str) -> Path:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def binary(bundled: Path | None, word: int = -1) -> CliBinary:
    return CliBinary(
        label="Tool",
        command="codeyard-test-tool",
        bundled=lambda: bundled,
        version_word=word,
        install_fix="Install it.",
        repair_fix="Repair it.",
    )


def test_configured_then_bundled_then_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    on_path = script(bin_dir / "codeyard-test-tool", "echo tool 1.0")
    monkeypatch.setenv("PATH", str(bin_dir))
    bundled = script(tmp_path / "bundled", "echo tool 2.0")
    assert binary(bundled).find("/opt/x") == Path("/opt/x")
    assert binary(bundled).find() == bundled
    assert binary(None).find() == on_path
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert binary(None).find() is None


def test_version_word_and_problems(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    good = script(tmp_path / "good", "echo 2.1.3 '(Claude Code)'")
    assert binary(good, word=0).version_of() == "2.1.3"
    assert binary(good, word=-1).version_of() == "Code)"
    assert binary(good).problem() is None and binary(good).path() == str(good)

    broken = script(tmp_path / "broken", "echo 'libc too old' >&2; exit 3")
    problem = binary(broken).problem()
    assert problem == (
        f"Tool cannot run here: {broken} --version failed (exit 3): libc too old. Repair it."
    )
    assert binary(broken).version_of() is None
    assert binary(None).problem() == "Tool was not found. Install it."
    assert binary(None).path() is None and binary(None).version_of() is None


def test_the_providers_describe_their_binaries() -> None:
    assert (CLAUDE.command, CLAUDE.version_word) == ("claude", 0)
    assert (CODEX.command, CODEX.version_word) == ("codex", -1)
    assert "cli_path" in CLAUDE.repair_fix and "cli_path" in CODEX.repair_fix
