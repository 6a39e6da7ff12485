"""Workflow retries, waits on run events and checks, loop cost caps and the utility-model steps
(schema extraction, judged best-of-N) end to end: the API over ASGI, real SQLite, real git, the
script agent, and ``codeyard fake-llm`` over loopback HTTP playing the utility model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from codeyard.testing.fake_llm import FakeLLM
from codeyard.testing.fake_llm.script import parse_replies
from codeyard.workflows.engine import WorkflowEngine
from tests.conftest import Api, make_repo
from tests.integration.test_utility_model import configure
from tests.integration.test_workflows import execute, outputs, save, script, wait_execution

pytestmark = pytest.mark.anyio


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


async def events_of(api: Api, execution: str) -> list[dict[str, Any]]:
    resp = await api.get(f"/api/workflows/executions/{execution}/events")
    assert resp.status_code == 200, resp.text
    data: list[dict[str, Any]] = resp.json()["data"]
    return data


def of_type(events: list[dict[str, Any]], type_: str) -> list[dict[str, Any]]:
    return [e["data"] for e in events if e["type"] == type_]


SAY = {"id": "impl", "type": "run", "provider": "script", "prompt": "p"}
#: Fails the first two times it runs in a worktree, then passes (its count is in the worktree).
FLAKY = "n=$(cat n 2>/dev/null || echo 0); n=$((n+1)); echo $n > n; test $n -ge 3"


async def test_retry_runs_a_flaky_command_again_and_a_failed_run_with_a_new_run(
    sqlite_api: Api, git_repo: Path
) -> None:
    api = sqlite_api
    wf = await save(
        api,
        {
            "name": "retrying",
            "steps": [
                {**SAY, "agent_options": script({"say": "ok"})},
                {
                    "id": "flaky",
                    "type": "shell",
                    "in": "impl",
                    "command": FLAKY,
                    "retry": {"max": 3, "backoff": 0.05, "factor": 2},
                },
                {
                    "id": "doomed",
                    "type": "run",
                    "provider": "script",
                    "prompt": "p",
                    "agent_options": script({"fail": "the model API answered 529"}),
                    "depends_on": ["flaky"],
                    "retry": {"max": 1, "backoff": 0.01, "on": ["run_failed"]},
                },
            ],
        },
    )
    execution = await execute(api, wf, git_repo)
    body = await wait_execution(api, execution, "completed", "failed")
    assert body["status"] == "failed"
    assert "step 'doomed' failed: run #" in body["status_reason"]
    steps = {s["key"]: s for s in body["steps"]}
    assert steps["flaky"]["status"] == "completed" and steps["flaky"]["attempts"] == 3
    assert steps["flaky"]["output"]["exit_code"] == 0
    assert steps["doomed"]["status"] == "failed" and steps["doomed"]["attempts"] == 2

    events = await events_of(api, execution)
    retries = of_type(events, "workflow.step.retry")
    assert [(r["key"], r["attempt"], r["kind"]) for r in retries] == [
        ("flaky", 1, "exit_code"),
        ("flaky", 2, "exit_code"),
        ("doomed", 1, "run_failed"),
    ]
    assert [r["delay_seconds"] for r in retries[:2]] == [0.05, 0.1]  # backoff, then times factor
    (failed,) = of_type(events, "workflow.step.failed")
    assert failed["kind"] == "run_failed" and failed["attempts"] == 2
    # A new run per attempt, each labelled with its attempt's key.
    runs = (await api.get("/api/runs", params={"limit": 50})).json()["data"]
    doomed = sorted(
        [r for r in runs if any(":doomed" in label for label in r["labels"])],
        key=lambda r: r["number"],
    )
    assert [r["status"] for r in doomed] == ["failed", "failed"]
    assert [r["labels"][0].split(":")[-1] for r in doomed] == ["doomed", "doomed~1"]
    assert steps["doomed"]["run_id"] == doomed[1]["id"]  # the view links the latest attempt

    # A failure the step does not retry on ends it at once.
    wf2 = await save(
        api,
        {
            "name": "picky",
            "steps": [
                {**SAY, "agent_options": script({"say": "ok"})},
                {
                    "id": "once",
                    "type": "shell",
                    "in": "impl",
                    "command": "exit 4",
                    "retry": {"max": 3, "backoff": 0, "on": ["timeout"]},
                },
            ],
        },
    )
    execution = await execute(api, wf2, git_repo)
    body = await wait_execution(api, execution, "completed", "failed")
    assert body["status"] == "failed" and "exited 4" in body["status_reason"]
    assert not of_type(await events_of(api, execution), "workflow.step.retry")


async def test_waits_on_a_check_and_on_an_event_in_the_runs_log(
    sqlite_api: Api, tmp_path: Path
) -> None:
    api = sqlite_api
    repo = make_repo(tmp_path / "app")
    project = await api.post("/api/projects", json={"name": "app", "repos": [{"path": str(repo)}]})
    assert project.status_code == 201, project.text
    repo_id = project.json()["repos"][0]["id"]
    checks = {"checks": [{"name": "tests", "command": "test -f ok.txt"}], "after_turn": True}
    resp = await api.request("PUT", f"/api/repos/{repo_id}/checks", json=checks)
    assert resp.status_code == 200, resp.text
    wf = await save(
        api,
        {
            "name": "waits",
            "steps": [
                {**SAY, "agent_options": script({"write": {"path": "ok.txt", "content": "1\n"}})},
                {
                    "id": "tests",
                    "type": "wait",
                    "step": "impl",
                    "check": "tests",
                    "timeout_seconds": 30,
                },
                {
                    "id": "suite",
                    "type": "wait",
                    "run": "${steps.impl.run_id}",
                    "event": "check.passed",
                    "timeout_seconds": 30,
                },
                {
                    "id": "wrote",
                    "type": "wait",
                    "step": "impl",
                    "event": "tool.call",
                    "where": {"tool": "Write"},
                    "timeout_seconds": 30,
                },
                {
                    "id": "next_suite",
                    "type": "wait",
                    "step": "impl",
                    "event": "check.suite_completed",
                    "since": "now",
                    "timeout_seconds": 0.5,
                    "depends_on": ["tests", "suite", "wrote"],
                },
            ],
        },
    )
    execution = await execute(api, wf, tmp_path, project_id=project.json()["id"])
    body = await wait_execution(api, execution, "completed", "failed")
    out = outputs(body)
    run_id = out["impl"]["run_id"]
    assert out["tests"]["ok"] is True and out["tests"]["run_id"] == run_id
    assert out["tests"]["event"]["type"] == "check.completed"
    assert out["suite"]["event"]["type"] == "check.suite_completed"
    assert out["suite"]["event"]["data"]["passed"] is True
    assert out["wrote"]["event"]["data"]["tool"] == "Write"
    # Only a suite written after it began counts: none comes, so it times out.
    assert body["status"] == "failed"
    assert "no event 'check.suite_completed'" in body["status_reason"]
    events = await events_of(api, execution)
    waiting = {w["key"]: w for w in of_type(events, "workflow.step.waiting")}
    assert waiting["next_suite"]["after"] >= out["suite"]["event"]["id"]
    assert waiting["tests"]["after"] == 0
    (failed,) = of_type(events, "workflow.step.failed")
    assert failed["kind"] == "timeout"


async def test_a_loop_stops_when_its_cost_passes_the_cap(sqlite_api: Api, git_repo: Path) -> None:
    api = sqlite_api
    turn = {"usage": {"input_tokens": 1, "output_tokens": 1, "cost_usd": 0.25}}
    wf = await save(
        api,
        {
            "name": "capped",
            "steps": [
                {**SAY, "agent_options": script({"say": "start"}, on_message=[turn])},
                {
                    "id": "fix",
                    "type": "loop",
                    "in": "impl",
                    "until": "test -f never",
                    "max_iterations": 10,
                    "max_cost_usd": 0.6,
                    "steps": [
                        {
                            "id": "again",
                            "type": "run",
                            "worktree": "shared",
                            "from": "impl",
                            "prompt": "try again",
                        }
                    ],
                },
            ],
        },
    )
    execution = await execute(api, wf, git_repo)
    body = await wait_execution(api, execution, "completed", "failed")
    assert body["status"] == "failed"
    assert (
        "cost $0.7500, more than its max_cost_usd $0.6000, after 3 iteration(s)"
        in body["status_reason"]
    )
    (capped,) = of_type(await events_of(api, execution), "workflow.loop.capped")
    assert capped == {"key": "fix", "iterations": 3, "cost_usd": 0.75, "max_cost_usd": 0.6}
    run = (await api.get(f"/api/runs/{outputs(body)['impl']['run_id']}")).json()
    assert run["turns"] == 4  # the first turn and three loop turns, none after the cap
    turns = [outputs(body)[f"fix#{i}/again"]["turn_cost_usd"] for i in range(3)]
    assert turns == [0.25, 0.25, 0.25]


async def test_schema_extraction_and_a_judged_best_of_two_through_the_utility_model(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM
) -> None:
    api = sqlite_api
    await configure(api, fake)
    facts = {
        "type": "object",
        "properties": {"version": {"type": "string"}, "fixes": {"type": "integer"}},
        "required": ["version", "fixes"],
        "additionalProperties": False,
    }
    wf = await save(
        api,
        {
            "name": "judged",
            "steps": [
                {**SAY, "agent_options": script({"say": "Released 2.5.1, fixing three bugs."})},
                {
                    "id": "facts",
                    "type": "extract",
                    "source": "${steps.impl.message}",
                    "schema": facts,
                    "instructions": "the version and how many bugs were fixed",
                },
                {
                    "id": "try",
                    "type": "parallel",
                    "depends_on": ["facts"],
                    "steps": [
                        {
                            "id": "try_a",
                            "type": "run",
                            "provider": "script",
                            "prompt": "p",
                            "agent_options": script({"write": {"path": "a.txt", "content": "a\n"}}),
                        },
                        {
                            "id": "try_b",
                            "type": "run",
                            "provider": "script",
                            "prompt": "p",
                            "agent_options": script(
                                {
                                    "write": {
                                        "path": "b.md",
                                        "content": "# docs\nfor ${vars.facts}\n",
                                    }
                                }
                            ),
                        },
                    ],
                },
                {
                    "id": "pick",
                    "type": "compare",
                    "candidates": ["try"],
                    "check": "true",
                    "judge": "prefer the one that documents release ${vars.facts.version}",
                    "land": "merge",
                },
            ],
        },
    )
    wrong = {"version": "2.5.1"}  # misses 'fixes': the schema's validator sends it back once
    right = {"version": "2.5.1", "fixes": 3}
    verdict = {"winner": "try/try_b", "reason": "b.md documents the release"}
    replies = [{"text": json.dumps(v)} for v in (wrong, right, verdict)]
    fake.script(parse_replies(replies)[0])
    execution = await execute(api, wf, git_repo)
    body = await wait_execution(api, execution, "completed", "failed")
    assert body["status"] == "completed", (body["status_reason"], body["steps"])
    out = outputs(body)
    assert out["facts"]["value"] == right
    assert out["pick"]["winner"] == "try/try_b"  # not the smaller diff: the judge decided
    assert out["pick"]["judgement"]["reason"] == verdict["reason"]
    assert [s["candidate"] for s in out["pick"]["scores"]] == ["try/try_a", "try/try_b"]

    calls = fake.model_calls()
    assert len(calls) == 3
    sent = [json.dumps(c.body) for c in calls]
    assert "fixing three bugs" in sent[0] and "'fixes' is a required property" in sent[1]
    judged = json.loads(sent[2])
    schema = judged["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["winner"]["enum"] == ["try/try_a", "try/try_b"]
    prompt = json.dumps(judged["messages"])
    assert "documents release 2.5.1" in prompt and "+# docs" in prompt and "+a" in prompt

    runs = {k: out[f"try/try_{k}"]["run_id"] for k in "ab"}
    landed = {k: (await api.get(f"/api/runs/{r}")).json()["resolution"] for k, r in runs.items()}
    assert landed == {"a": "discarded", "b": "merged"}
    usage = (await api.get("/api/settings/utility-model")).json()["usage"]
    assert usage["calls"] == 3
    model_cost = out["facts"]["model_cost_usd"] + out["pick"]["model_cost_usd"]
    assert body["spent_usd"] == pytest.approx(model_cost)


async def test_extraction_without_a_configured_model_fails_and_says_how_to_configure(
    sqlite_api: Api, git_repo: Path
) -> None:
    api = sqlite_api
    wf = await save(
        api,
        {
            "name": "unconfigured",
            "steps": [
                {**SAY, "agent_options": script({"say": "hi"})},
                {
                    "id": "facts",
                    "type": "extract",
                    "source": "${steps.impl.message}",
                    "schema": {"type": "object", "properties": {"x": {"type": "string"}}},
                    "retry": {"max": 2, "backoff": 0},
                },
            ],
        },
    )
    execution = await execute(api, wf, git_repo)
    body = await wait_execution(api, execution, "completed", "failed")
    assert body["status"] == "failed"
    assert "PUT /api/settings/utility-model" in body["status_reason"]
    assert not of_type(await events_of(api, execution), "workflow.step.retry")


async def test_a_restart_during_a_retry_backoff_goes_on_with_the_next_attempt(
    sqlite_api: Api, git_repo: Path
) -> None:
    """The server stops (shutdown, as in a deploy) while a step waits to be retried: resumed by
    id, the execution continues with the recorded attempt; no attempt runs twice."""
    api = sqlite_api
    once = "n=$(cat n 2>/dev/null || echo 0); n=$((n+1)); echo $n > n; test $n -ge 2"
    wf = await save(
        api,
        {
            "name": "restarted",
            "steps": [
                {**SAY, "agent_options": script({"say": "ok"})},
                {
                    "id": "flaky",
                    "type": "shell",
                    "in": "impl",
                    "command": once,
                    "retry": {"max": 2, "backoff": 4, "factor": 1},
                },
            ],
        },
    )
    execution = await execute(api, wf, git_repo)
    with anyio.fail_after(30):
        while not of_type(await events_of(api, execution), "workflow.step.retry"):
            await anyio.sleep(0.05)
    old: WorkflowEngine = api.app.state.workflows
    await old.stop()  # what a shutdown does: the execution is interrupted
    body = (await api.get(f"/api/workflows/executions/{execution}")).json()
    assert body["status"] == "interrupted", body
    new = WorkflowEngine(api.services)
    await new.start()
    api.app.state.workflows = new  # the app's shutdown stops this one
    resumed = await api.post(f"/api/workflows/executions/{execution}/resume")
    assert resumed.status_code == 200, resumed.text
    body = await wait_execution(api, execution, "completed", "failed")
    assert body["status"] == "completed", (body["status_reason"], body["steps"])
    out = outputs(body)
    assert Path(out["impl"]["worktree"], "n").read_text().strip() == "2"  # two attempts in all
    events = await events_of(api, execution)
    assert [r["attempt"] for r in of_type(events, "workflow.step.retry")] == [1]
    (done,) = [d for d in of_type(events, "workflow.step.completed") if d["key"] == "flaky"]
    assert done["attempts"] == 2


async def test_a_shell_step_in_a_discarded_runs_worktree_fails_with_a_reason(
    sqlite_api: Api, git_repo: Path
) -> None:
    """The run step's output still names its worktree after a ``land`` discarded it: the shell
    step fails saying why (was an internal error from spawning in a missing directory)."""
    api = sqlite_api
    wf = await save(
        api,
        {
            "name": "late-shell",
            "steps": [
                {**SAY, "agent_options": script({"say": "ok"})},
                {"id": "drop", "type": "land", "step": "impl", "action": "discard"},
                {
                    "id": "late",
                    "type": "shell",
                    "in": "impl",
                    "command": "true",
                    "depends_on": ["drop"],
                },
            ],
        },
    )
    execution = await execute(api, wf, git_repo)
    body = await wait_execution(api, execution, "completed", "failed")
    assert body["status"] == "failed"
    assert "is not on this server: its run was landed or discarded" in body["status_reason"]
    assert "internal error" not in body["status_reason"]
