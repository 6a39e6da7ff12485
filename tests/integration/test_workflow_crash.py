"""``kill -9`` in the middle of a workflow's parallel step (issue 20): after a restart the
execution is ``interrupted``; resumed by its id it completes, and no step ran twice — each run
step created exactly one run (the interrupted ones were resumed, not replaced), the step
before the crash is not repeated, and the shell step after it ran once."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import yaml

from codeyard.crashpoints import CRASH_AT_ENV
from tests.support.server import ServerProcess

pytestmark = [pytest.mark.anyio, pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    srv = ServerProcess(tmp_path / "data", env={"CODEYARD_MAX_CONCURRENT_RUNS": "6"})
    try:
        srv.start(timeout=120)
        yield srv
    finally:
        srv.stop()


def script(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"scenario": {"steps": list(steps)}}


DEFINITION = {
    "name": "crashy",
    "steps": [
        {
            "id": "first",
            "type": "run",
            "provider": "script",
            "prompt": "p",
            "agent_options": script({"write": {"path": "first.txt", "content": "1\n"}}),
        },
        {
            "id": "fan",
            "type": "parallel",
            "depends_on": ["first"],
            "steps": [
                {
                    "id": f"leg{i}",
                    "type": "run",
                    "provider": "script",
                    "prompt": f"leg {i}",
                    "agent_options": script({"bash": "sleep 4"}, {"say": f"leg {i} done"}),
                }
                for i in range(3)
            ],
        },
        {
            "id": "after",
            "type": "shell",
            "in": "first",
            "depends_on": ["fan"],
            "command": "echo once >> after.txt",
        },
    ],
}


async def test_kill_9_mid_parallel_then_resume_runs_every_step_once(
    server: ServerProcess, git_repo: Path
) -> None:
    with anyio.fail_after(240):
        async with server.client() as client:
            resp = await client.post("/api/workflows", json={"source": yaml.safe_dump(DEFINITION)})
            assert resp.status_code == 201, resp.text
            wf = resp.json()["id"]
            resp = await client.post(
                f"/api/workflows/{wf}/execute", json={"repo_path": str(git_repo)}
            )
            assert resp.status_code == 202, resp.text
            execution = resp.json()["execution_id"]
            url = f"/api/workflows/executions/{execution}"

            while True:  # all three legs have their run working
                body = (await client.get(url)).json()
                legs = [s for s in body["steps"] if s["key"].startswith("fan/") and s["run_id"]]
                if len(legs) == 3:
                    states = [
                        (await client.get(f"/api/runs/{s['run_id']}")).json()["status"]
                        for s in legs
                    ]
                    if all(s == "running" for s in states):
                        break
                await anyio.sleep(0.1)
            await anyio.sleep(0.5)
            server.crash()
            await server.start_async(timeout=120)

            body = (await client.get(url)).json()
            assert body["status"] == "interrupted", body["status_reason"]
            resp = await client.post(f"{url}/resume")
            assert resp.status_code == 200, resp.text
            while body["status"] not in ("completed", "failed", "cancelled"):
                await anyio.sleep(0.1)
                body = (await client.get(url)).json()
            assert body["status"] == "completed", (body["status_reason"], body["steps"])

            events = (await client.get(f"{url}/events")).json()["data"]
            runs = (await client.get("/api/runs", params={"limit": 100})).json()["data"]
    types = Counter(e["type"] for e in events)
    assert types["workflow.execution.interrupted"] == 1
    assert types["workflow.execution.resumed"] == 1
    created = Counter(e["data"]["key"] for e in events if e["type"] == "workflow.step.run")
    assert created == {"first": 1, "fan/leg0": 1, "fan/leg1": 1, "fan/leg2": 1}
    done = Counter(e["data"]["key"] for e in events if e["type"] == "workflow.step.completed")
    assert set(done.values()) == {1}, done
    assert len(runs) == 4  # no step made a second run
    assert all(r["status"] == "review" for r in runs)
    first = next(s for s in body["steps"] if s["key"] == "first")
    assert Path(first["output"]["worktree"], "after.txt").read_text() == "once\n"


async def test_kill_9_between_a_run_and_its_record_resumes_with_that_run(
    tmp_path: Path, git_repo: Path
) -> None:
    """A run step's first record is ``workflow.step.run``, written after the run exists (no
    ``step.started`` before it): killed in between, the resumed execution must find the run by
    its label and use it, not create a second one."""
    srv = ServerProcess(tmp_path / "data", env={CRASH_AT_ENV: "workflow:run-created"})
    definition = {
        "name": "gap",
        "steps": [
            {
                "id": "only",
                "type": "run",
                "provider": "script",
                "prompt": "p",
                "agent_options": script({"say": "done"}),
            },
            {
                "id": "after",
                "type": "shell",
                "in": "only",
                "depends_on": ["only"],
                "command": "echo once >> after.txt",
            },
        ],
    }
    try:
        srv.start(timeout=120)
        with anyio.fail_after(240):
            async with srv.client() as client:
                resp = await client.post("/api/workflows", json={"definition": definition})
                assert resp.status_code == 201, resp.text
                wf = resp.json()["id"]
                # The server may die before or after answering: the id is read after restart.
                with contextlib.suppress(httpx.TransportError):
                    await client.post(
                        f"/api/workflows/{wf}/execute", json={"repo_path": str(git_repo)}
                    )
                assert srv.proc is not None
                while srv.proc.poll() is None:  # it kills itself once the run is created
                    await anyio.sleep(0.05)
                assert srv.proc.returncode == -9, srv.log_tail()
                srv.crash()
                srv._env.pop(CRASH_AT_ENV)
                await srv.start_async(timeout=120)

                listed = (await client.get(f"/api/workflows/{wf}/executions")).json()["data"]
                assert [x["status"] for x in listed] == ["interrupted"]
                url = f"/api/workflows/executions/{listed[0]['id']}"
                events = (await client.get(f"{url}/events")).json()["data"]
                assert not [e for e in events if e["type"].startswith("workflow.step.")]
                runs = (await client.get("/api/runs")).json()["data"]
                assert len(runs) == 1  # created, not yet named in the log
                resp = await client.post(f"{url}/resume")
                assert resp.status_code == 200, resp.text
                body = (await client.get(url)).json()
                while body["status"] not in ("completed", "failed", "cancelled"):
                    await anyio.sleep(0.1)
                    body = (await client.get(url)).json()
                assert body["status"] == "completed", (body["status_reason"], body["steps"])
                events = (await client.get(f"{url}/events")).json()["data"]
                runs_after = (await client.get("/api/runs")).json()["data"]
    finally:
        srv.stop()
    assert [r["id"] for r in runs_after] == [runs[0]["id"]]  # no second run
    recorded = [e["data"] for e in events if e["type"] == "workflow.step.run"]
    assert [(d["key"], d["run_id"], d["type"]) for d in recorded] == [
        ("only", runs[0]["id"], "run")
    ]
    only = next(s for s in body["steps"] if s["key"] == "only")
    assert Path(only["output"]["worktree"], "after.txt").read_text() == "once\n"
