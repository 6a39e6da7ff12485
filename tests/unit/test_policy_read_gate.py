"""The read gate: no tool call may read Codeyard's data directory or another run's worktree,
whatever the rules, trust or permission mode say (it holds where the sandbox is off)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from codeyard.domain.policy import GateSettings, PolicyContext, evaluate
from codeyard.domain.tools import ToolKind, ToolRequest


@pytest.fixture
def data(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    for run in ("1-mine", "2-other"):
        (root / "worktrees" / "p" / run / "repo").mkdir(parents=True)
    (root / "admin.token").write_text("cy_x\n")
    os.symlink(root / "admin.token", root / "worktrees/p/1-mine/repo/link")
    return root


def decide(data: Path, tool: str, kind: ToolKind, tool_input: dict[str, Any], **kw: Any) -> Any:
    mine = data / "worktrees/p/1-mine/repo"
    ctx = PolicyContext(
        worktree=mine, private=(str(data),), own=(str(mine),), permission_mode="auto", **kw
    )
    return evaluate(ToolRequest("c", tool, kind, tool_input), ctx)


@pytest.mark.parametrize(
    "command",
    [
        "cat {data}/admin.token",
        "cat ../../../../admin.token",
        "head -c 100 link",
        "cp {data}/secret.key ./k",
        "python3 -c 'open(\"{data}/secret.key\").read()'",
        "grep -r token {data}/worktrees/p/2-other/repo",
        "sqlite3 --init={data}/codeyard.db",
    ],
)
def test_shell_reads_of_private_places_are_denied_in_auto_mode_and_trusted_runs(
    data: Path, command: str
) -> None:
    line = command.format(data=data)
    for trusted in (False, True):
        d = decide(data, "Bash", "bash", {"command": line}, trusted=trusted)
        assert (d.action, d.rule, d.gate) == ("deny", "gate:read-private", True), line


def test_the_gate_is_not_a_setting(data: Path) -> None:
    lenient = GateSettings({"write-outside-worktree": "ask"})
    d = decide(data, "Read", "read", {"file_path": str(data / "admin.token")}, gates=lenient)
    assert d.action == "deny" and d.rule == "gate:read-private"


def test_file_tools_and_search_paths_are_gated(data: Path) -> None:
    assert decide(data, "Read", "read", {"file_path": str(data / "secret.key")}).action == "deny"
    other = str(data / "worktrees/p/2-other/repo")
    assert decide(data, "Grep", "search", {"pattern": "x", "path": other}).action == "deny"


def test_the_runs_own_worktree_and_the_rest_of_the_host_stay_readable(data: Path) -> None:
    mine = data / "worktrees/p/1-mine/repo"
    for command in (f"cat {mine}/README.md", "cat README.md", "ls /usr/bin", "echo $HOME"):
        assert decide(data, "Bash", "bash", {"command": command}).action == "allow", command
    assert decide(data, "Read", "read", {"file_path": str(mine / "a.py")}).action == "allow"
