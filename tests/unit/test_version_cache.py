"""Agent CLI versions are asked once per program and remembered across server starts
(``codeyard.agents.version_cache``); a changed program is asked again, a failure is not kept.
The CLIs here are real executables (shell scripts) that count how often they were started."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from codeyard.agents import version_cache
from codeyard.agents.acp.binaries import tool_version
from codeyard.agents.binary import run_version


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CODEYARD_CACHE_DIR", str(tmp_path / "cache"))
    tool_version.cache_clear()
    run_version.cache_clear()
    yield
    tool_version.cache_clear()
    run_version.cache_clear()


def _cli(tmp_path: Path, prints: str, code: int = 0) -> tuple[Path, Path]:
    calls = tmp_path / "calls"
    cli = tmp_path / "fakecli"
    cli.write_text(f"#!/bin/sh\necho x >> {calls}\necho '{prints}'\nexit {code}\n")
    cli.chmod(0o755)
    return cli, calls


def _started(calls: Path) -> int:
    return len(calls.read_text().splitlines()) if calls.exists() else 0


def test_a_version_is_asked_once_and_remembered_after_a_restart(tmp_path: Path) -> None:
    cli, calls = _cli(tmp_path, "fakecli 1.2.3")
    assert tool_version(str(cli)) == ("1.2.3", None)
    tool_version.cache_clear()  # what a new server process starts with
    assert tool_version(str(cli)) == ("1.2.3", None)
    assert _started(calls) == 1
    kept = json.loads(version_cache.cache_file().read_text())
    assert list(kept.values()) == ["1.2.3"]


def test_an_upgraded_program_is_asked_again(tmp_path: Path) -> None:
    cli, calls = _cli(tmp_path, "fakecli 1.2.3")
    assert tool_version(str(cli))[0] == "1.2.3"
    tool_version.cache_clear()
    cli.write_text(cli.read_text().replace("1.2.3", "1.3.0"))  # same path, new contents
    os.utime(cli, ns=(cli.stat().st_atime_ns, cli.stat().st_mtime_ns + 1_000_000))
    assert tool_version(str(cli)) == ("1.3.0", None)
    assert _started(calls) == 2


def test_a_failing_program_is_not_remembered(tmp_path: Path) -> None:
    cli, calls = _cli(tmp_path, "cannot start", code=3)
    version, why = tool_version(str(cli))
    assert version is None and why is not None and "exit 3" in why
    tool_version.cache_clear()
    assert tool_version(str(cli))[0] is None
    assert _started(calls) == 2  # asked again: a fix shows at once
    assert not version_cache.cache_file().exists()


def test_claude_and_codex_style_version_words_survive_the_cache(tmp_path: Path) -> None:
    cli, calls = _cli(tmp_path, "2.1.3 (Claude Code)")
    assert run_version(cli) == (["2.1.3", "(Claude", "Code)"], None)
    run_version.cache_clear()
    assert run_version(cli) == (["2.1.3", "(Claude", "Code)"], None)
    assert _started(calls) == 1


def test_an_unreadable_cache_is_asked_through_and_rewritten(tmp_path: Path) -> None:
    cli, calls = _cli(tmp_path, "fakecli 4.5.6")
    path = version_cache.cache_file()
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert tool_version(str(cli)) == ("4.5.6", None)
    assert list(json.loads(path.read_text()).values()) == ["4.5.6"]
    assert _started(calls) == 1
