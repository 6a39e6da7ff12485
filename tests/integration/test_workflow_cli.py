"""``codeyard workflow …`` as a person runs it: the real binary against a real ``codeyard serve``
(script agent, real git), following an execution's progress over SSE."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import make_repo
from tests.support.server import ServerProcess

#: A real server process and ~8 CLI processes (about 3 s each to start on a loaded machine).
pytestmark = pytest.mark.slow

CLI = str(Path(sys.executable).parent / "codeyard")
FLAKY = "n=$(cat n 2>/dev/null || echo 0); n=$((n+1)); echo $n > n; test $n -ge 2"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path_factory.mktemp("wfcli") / "data")
    try:
        srv.start()
        yield srv
    finally:
        srv.stop()


def cli(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODEYARD_")}
    env.update(CODEYARD_SERVER=server.url, CODEYARD_TOKEN=server.token, COLUMNS="200", NO_COLOR="1")
    return subprocess.run(
        [CLI, *args], env=env, capture_output=True, text=True, timeout=90, check=False
    )


def create(server: ServerProcess, definition: dict[str, Any]) -> str:
    headers = {"Authorization": f"Bearer {server.token}"}
    resp = httpx.post(
        f"{server.url}/api/workflows",
        json={"source": yaml.safe_dump(definition)},
        headers=headers,
        timeout=30,
    )
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def script(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"scenario": {"steps": list(steps)}}


def test_list_show_run_follow_and_executions(server: ServerProcess, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    create(
        server,
        {
            "name": "cli-flow",
            "description": "Greets, then a flaky check",
            "inputs": {"who": {"type": "string", "required": True}},
            "steps": [
                {
                    "id": "impl",
                    "type": "run",
                    "provider": "script",
                    "prompt": "Greet ${inputs.who}",
                    "agent_options": script({"say": "hello"}),
                },
                {
                    "id": "flaky",
                    "type": "shell",
                    "in": "impl",
                    "command": FLAKY,
                    "retry": {"max": 2, "backoff": 0.05},
                },
            ],
            "outputs": {
                "who": "${inputs.who}",
                "greeted": {"value": "${inputs.who}", "type": "string", "minLength": 1},
            },
        },
    )
    listed = cli(server, "workflow", "list")
    assert listed.returncode == 0, listed.stderr
    assert "cli-flow" in listed.stdout and "Greets, then a flaky check" in listed.stdout

    shown = cli(server, "workflow", "show", "cli-flow")
    assert shown.returncode == 0, shown.stderr
    assert "v1" in shown.stdout and "Greet ${inputs.who}" in shown.stdout
    lines = [line.split() for line in shown.stdout.splitlines()]
    assert ["who", "string", "yes"] in lines  # the typed inputs table
    assert ["greeted", "string", "${inputs.who}", "minLength=1"] in lines

    missing = cli(server, "workflow", "run", "cli-flow", "--repo", str(repo))
    assert missing.returncode == 1
    assert "who: required" in missing.stdout + missing.stderr

    unknown = cli(server, "workflow", "run", "nope", "--repo", str(repo))
    assert unknown.returncode == 1 and "No workflow is named 'nope'" in unknown.stderr

    ran = cli(server, "workflow", "run", "cli-flow", "--var", "who=ann", "--repo", str(repo), "-f")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    out = ran.stdout
    for text in (
        "▶ impl (run)",
        "✓ impl (run #1 review)",
        "↻ flaky: attempt 1 in 0.05 s (exit_code:",
        "✓ flaky after 2 attempts",
        "execution completed",
    ):
        assert text in out, out
    execution = out.split("Started ", 1)[1].split()[0]
    assert execution.startswith("wfx_")

    runs = cli(server, "workflow", "executions", "cli-flow", "--status", "completed")
    assert runs.returncode == 0 and execution in runs.stdout and "completed" in runs.stdout
    detail = cli(server, "workflow", "show", execution)
    assert detail.returncode == 0, detail.stderr
    assert "flaky" in detail.stdout and '"who": "ann"' in detail.stdout


def test_run_without_follow_then_cancel(server: ServerProcess, tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    wf = create(
        server,
        {
            "name": "cli-slow",
            "steps": [
                {
                    "id": "slow",
                    "type": "run",
                    "provider": "script",
                    "prompt": "p",
                    "agent_options": script({"sleep": 60}),
                }
            ],
        },
    )
    started = cli(server, "workflow", "run", wf, "--repo", str(repo))
    assert started.returncode == 0, started.stderr
    assert "codeyard workflow show wfx_" in started.stdout
    execution = started.stdout.split("Started ", 1)[1].split()[0]
    cancelled = cli(server, "workflow", "cancel", execution)
    assert cancelled.returncode == 0, cancelled.stderr
    assert f"{execution} cancelled." in cancelled.stdout
    again = cli(server, "workflow", "cancel", execution)
    assert again.returncode == 1 and "already ended" in again.stderr
