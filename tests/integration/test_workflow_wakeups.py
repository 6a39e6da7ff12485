"""The workflow engine wakes on committed events, not on a poll (issue 20: engine overhead per
step < 50 ms). Each test sets the safety-net sweep to a minute: only the hub's events can end
the wait in time, so a regression to polling fails here instead of silently costing latency.
Real SQLite and PostgreSQL (the ``api`` fixture; on PostgreSQL the events come through LISTEN),
the script agent, real git."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from codeyard.workflows import wait_steps
from codeyard.workflows.watch import RunWatcher
from tests.conftest import Api
from tests.integration.test_workflows import execute, outputs, save, script, wait_execution

pytestmark = pytest.mark.anyio
#: Longer than any wait below: a sweep would be too late to pass them.
MINUTE = 60.0


def ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def new_run(api: Api, repo: Path, *scenario: dict[str, Any]) -> str:
    body = {
        "prompt": "p",
        "repo_path": str(repo),
        "provider": "script",
        "agent_options": script(*scenario),
    }
    resp = await api.post("/api/runs", json=body)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


async def test_the_run_watcher_is_woken_by_the_status_event(api: Api, git_repo: Path) -> None:
    svc = api.services
    watcher = RunWatcher(svc.engine, svc.hub, sweep=MINUTE)
    watcher.start()
    try:
        run_id = await new_run(api, git_repo, {"sleep": 0.3}, {"say": "done"})
        with anyio.fail_after(20):
            row = await watcher.until(run_id, lambda r: r["status"] == "review")
        assert row["id"] == run_id and row["turns"] == 1
        events = (await api.get(f"/api/runs/{run_id}/events")).json()["data"]
        statuses = [e["data"] for e in events if e["type"] == "run.status"]
        review = next(d for d in statuses if d["to"] == "review")
        # Already there: answered by the first read, without any event.
        with anyio.fail_after(20):  # well before the minute's sweep
            again = await watcher.until(run_id, lambda r: r["status"] == "review")
        assert again["id"] == run_id
    finally:
        await watcher.stop()
    assert review["from"] == "running"


async def test_a_wait_step_ends_on_the_awaited_event_not_on_a_poll(
    api: Api, git_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(wait_steps, "EVENT_SWEEP_SECONDS", MINUTE)
    run_id = await new_run(api, git_repo, {"sleep": 1.0}, {"say": "late news"})
    wf = await save(
        api,
        {
            "name": "listen",
            "inputs": {"run": {"type": "string", "required": True}},
            "steps": [
                {
                    "id": "news",
                    "type": "wait",
                    "run": "${inputs.run}",
                    "event": "agent.message",
                    "where": {"text": "late news"},
                    "timeout_seconds": 30,
                }
            ],
        },
    )
    resp = await api.post(
        f"/api/workflows/{wf}/execute",
        json={"repo_path": str(git_repo), "variables": {"run": run_id}},
    )
    assert resp.status_code == 202, resp.text
    execution = resp.json()["execution_id"]
    body = await wait_execution(api, execution, "completed", "failed", timeout=20)
    assert body["status"] == "completed", body["status_reason"]
    event = outputs(body)["news"]["event"]
    assert event["data"]["text"] == "late news"
    log = (await api.get(f"/api/workflows/executions/{execution}/events")).json()["data"]
    waiting = next(e for e in log if e["type"] == "workflow.step.waiting")
    done = next(e for e in log if e["type"] == "workflow.step.completed")
    assert ts(waiting["ts"]) < ts(event["ts"])  # it really waited for a later event
    assert ts(done["ts"]) - ts(event["ts"]) < 5.0  # woken by it, not by the minute's sweep


async def test_consecutive_run_steps_follow_each_other_without_polling(
    api: Api, git_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three run steps in a chain with the run watcher's sweep at a minute (in the engine's own
    watcher): each step sees its run's end through the status event; each run step writes
    exactly two events (its run, its completion)."""
    engine = api.app.state.workflows
    monkeypatch.setattr(engine.watcher, "_sweep", MINUTE)
    say = script({"say": "ok"})
    chain = [
        {"id": f"s{i}", "type": "run", "provider": "script", "prompt": "p", "agent_options": say}
        | ({"depends_on": [f"s{i - 1}"]} if i else {})
        for i in range(3)
    ]
    wf = await save(api, {"name": "chain", "steps": chain})
    execution = await execute(api, wf, git_repo)
    body = await wait_execution(api, execution, "completed", "failed", timeout=30)
    assert body["status"] == "completed", body["status_reason"]
    log = (await api.get(f"/api/workflows/executions/{execution}/events")).json()["data"]
    per_step = [[e["type"] for e in log if e["data"].get("key") == f"s{i}"] for i in range(3)]
    assert per_step == [["workflow.step.run", "workflow.step.completed"]] * 3
    assert [s["status"] for s in body["steps"]] == ["completed"] * 3
