"""Workflows end to end (issue 20): the API over ASGI, real SQLite, real git, the script agent.

Every run step is an ordinary run created through the run service; shell steps run for real in
the run's worktree (sandboxed like the run's own processes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

from tests.conftest import Api

pytestmark = pytest.mark.anyio


def script(
    *steps: dict[str, Any], on_message: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    options: dict[str, Any] = {"scenario": {"steps": list(steps)}}
    if on_message is not None:
        options["on_message"] = on_message
    return options


async def save(api: Api, definition: dict[str, Any]) -> str:
    resp = await api.post("/api/workflows", json={"source": yaml.safe_dump(definition)})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


async def execute(api: Api, wf: str, repo: Path, **extra: Any) -> str:
    resp = await api.post(f"/api/workflows/{wf}/execute", json={"repo_path": str(repo), **extra})
    assert resp.status_code == 202, resp.text
    return str(resp.json()["execution_id"])


async def wait_execution(
    api: Api, execution: str, *statuses: str, timeout: float = 30
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    with anyio.move_on_after(timeout):
        while True:
            body = (await api.get(f"/api/workflows/executions/{execution}")).json()
            if body.get("status") in statuses:
                return body
            await anyio.sleep(0.05)
    raise AssertionError(f"execution never reached {statuses}: {body}")


def outputs(body: dict[str, Any]) -> dict[str, Any]:
    return {s["key"]: s["output"] for s in body["steps"]}


async def test_dag_fan_out_of_three_and_a_loop_until_a_check_passes(
    sqlite_api: Api, git_repo: Path
) -> None:
    api = sqlite_api
    definition = {
        "name": "dag",
        "inputs": {"greeting": {"type": "string", "required": True}},
        "steps": [
            {
                "id": "impl",
                "type": "run",
                "provider": "script",
                "prompt": "Write ${inputs.greeting}",
                "agent_options": script(
                    {"write": {"path": "hello.txt", "content": "${inputs.greeting}\n"}},
                    on_message=[{"bash": "echo fixed >> fixes.txt"}],
                ),
            },
            {
                "id": "fan",
                "type": "parallel",
                "steps": [
                    {
                        "id": f"check{i}",
                        "type": "shell",
                        "in": "impl",
                        "command": f"grep -c hi hello.txt && echo {i}",
                    }
                    for i in range(3)
                ],
            },
            {
                "id": "fix",
                "type": "loop",
                "depends_on": ["fan"],
                "in": "impl",
                "until": "test $(wc -l < fixes.txt) -ge 2",
                "max_iterations": 4,
                "steps": [
                    {
                        "id": "again",
                        "type": "run",
                        "worktree": "shared",
                        "from": "impl",
                        "prompt": "fix it",
                    }
                ],
            },
        ],
        "outputs": {"iterations": "${steps.fix.iterations}"},
    }
    wf = await save(api, definition)
    execution = await execute(api, wf, git_repo, variables={"greeting": "hi there"})
    body = await wait_execution(api, execution, "completed", "failed")
    assert body["status"] == "completed", body
    out = outputs(body)
    assert out["fan"]["children"].keys() == {"fan/check0", "fan/check1", "fan/check2"}
    assert out["fix"]["iterations"] == 2
    assert body["outputs"] == {"iterations": 2}
    run = (await api.get(f"/api/runs/{out['impl']['run_id']}")).json()
    assert run["turns"] == 3  # the first turn and one per loop iteration
    assert Path(out["impl"]["worktree"], "fixes.txt").read_text().count("fixed") == 2
