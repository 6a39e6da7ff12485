"""The `codeyard` command as a person runs it: a real binary against a real `codeyard serve`.

The server writes its URL and a fresh admin token into the data dir; the CLI finds both there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import make_repo
from tests.support.server import ServerProcess

CLI = str(Path(sys.executable).parent / "codeyard")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # An empty CODEYARD_ADMIN_TOKEN makes the server generate one and write admin.token.
    srv = ServerProcess(tmp_path_factory.mktemp("cli") / "data", env={"CODEYARD_ADMIN_TOKEN": ""})
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()


def cli(
    server: ServerProcess, *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEYARD_")}
    env.update(CODEYARD_DATA_DIR=str(server.data_dir), COLUMNS="200", NO_COLOR="1")
    return subprocess.run(
        [CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def write_scenario(path: Path, *steps: dict[str, object]) -> Path:
    path.write_text(json.dumps({"steps": list(steps)}))
    return path


def test_token_file_is_private(server: ServerProcess) -> None:
    token_file = server.data_dir / "admin.token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    assert json.loads((server.data_dir / "server.json").read_text())["url"] == server.url


def test_run_follow_streams_the_run_and_exits_zero_in_review(
    server: ServerProcess, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    scenario = write_scenario(
        tmp_path / "s.json",
        {"say": "Writing notes"},
        {"write": {"path": "notes.md", "content": "# notes\n"}},
        {"bash": "wc -l notes.md"},
    )
    result = cli(server, "run", "Write notes", "--scenario", str(scenario), "--follow", cwd=repo)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    for text in ("Writing notes", "write notes.md", "$ wc -l notes.md", "1 notes.md", "review"):
        assert text in out, out
    ls = cli(server, "ls")
    assert ls.returncode == 0 and "Write notes" in ls.stdout and "review" in ls.stdout
    number = ls.stdout.split("\n")[1].split()[0]
    show = cli(server, "show", number)
    assert show.returncode == 0 and "codeyard/" in show.stdout and "Write notes" in show.stdout
    logs = cli(server, "logs", number)
    assert logs.returncode == 0 and "Writing notes" in logs.stdout


def test_failing_run_exits_non_zero_with_the_reason(server: ServerProcess, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    scenario = write_scenario(tmp_path / "s.json", {"fail": "compiler exploded"})
    result = cli(server, "run", "Break", "--repo", str(repo), "--scenario", str(scenario), "-f")
    assert result.returncode == 1
    assert "compiler exploded" in result.stdout + result.stderr


def test_msg_pause_resume_cancel(server: ServerProcess, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    scenario = write_scenario(tmp_path / "s.json", {"ask": "Which colour?"}, {"sleep": 30})
    created = cli(server, "run", "Ask me", "--repo", str(repo), "--scenario", str(scenario))
    assert created.returncode == 0, created.stderr
    number = created.stdout.split("#")[1].split()[0]
    for _ in range(100):
        if "waiting" in cli(server, "show", number).stdout:
            break
    answered = cli(server, "msg", number, "blue")
    assert answered.returncode == 0, answered.stderr
    paused = cli(server, "pause", number)
    assert paused.returncode == 0 and "paused" in paused.stdout
    again = cli(server, "pause", number)
    assert again.returncode == 1 and "paused" in again.stderr
    assert cli(server, "resume", number).returncode == 0
    cancelled = cli(server, "cancel", number)
    assert cancelled.returncode == 0 and "cancelled" in cancelled.stdout


def test_bad_input_gets_the_servers_explanation(server: ServerProcess, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    result = cli(server, "run", "x", "--repo", str(plain), "--provider", "script")
    assert result.returncode == 1 and "not a git work tree" in result.stderr
    assert "Traceback" not in result.stderr


def test_doctor_reports_server_and_providers(server: ServerProcess) -> None:
    result = cli(server, "doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "script" in result.stdout and "git version" in result.stdout


def test_unreachable_server_is_explained(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEYARD_")}
    env["CODEYARD_DATA_DIR"] = str(tmp_path)
    result = subprocess.run(
        [CLI, "--server", "http://127.0.0.1:9", "ls"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1 and "codeyard serve" in result.stderr


def test_help_lists_the_commands() -> None:
    result = subprocess.run(
        [CLI, "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "COLUMNS": "200", "NO_COLOR": "1"},
    )
    for command in (
        "serve",
        "run",
        "ls",
        "show",
        "logs",
        "msg",
        "cancel",
        "pause",
        "resume",
        "doctor",
    ):
        assert command in result.stdout


def test_approve_from_the_terminal(server: ServerProcess, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    scenario = write_scenario(tmp_path / "s.json", {"bash": "echo approved-run"})
    created = cli(
        server,
        "run",
        "Ask first",
        "--repo",
        str(repo),
        "--scenario",
        str(scenario),
        "--permission-mode",
        "default",
    )
    assert created.returncode == 0, created.stderr
    listed = None
    for _ in range(100):
        listed = cli(server, "approvals")
        if "echo approved-run" in listed.stdout:
            break
    assert listed is not None and "echo approved-run" in listed.stdout, listed.stdout
    approval_id = next(w for w in listed.stdout.split() if w.startswith("apr_"))
    approved = cli(server, "approve", approval_id)
    assert approved.returncode == 0 and "approved" in approved.stdout
    twice = cli(server, "reject", approval_id)
    assert twice.returncode == 1 and "already approved" in twice.stderr
    number = created.stdout.split("#")[1].split()[0]
    for _ in range(100):
        if "review" in cli(server, "show", number).stdout:
            break
    logs = cli(server, "logs", number)
    assert "approved-run" in logs.stdout
