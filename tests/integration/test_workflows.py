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
    assert body["status"] == "completed", (body["status_reason"], body["steps"])
    out = outputs(body)
    assert out["fan"]["children"].keys() == {"fan/check0", "fan/check1", "fan/check2"}
    assert out["fix"]["iterations"] == 2
    assert body["outputs"] == {"iterations": 2}
    run = (await api.get(f"/api/runs/{out['impl']['run_id']}")).json()
    assert run["turns"] == 3  # the first turn and one per loop iteration
    assert Path(out["impl"]["worktree"], "fixes.txt").read_text().count("fixed") == 2


async def test_approval_rejected_once_sends_the_run_back_with_the_reason_then_lands(
    sqlite_api: Api, git_repo: Path
) -> None:
    api = sqlite_api
    wf = await save(
        api,
        {
            "name": "gated",
            "steps": [
                {
                    "id": "impl",
                    "type": "run",
                    "provider": "script",
                    "prompt": "Add a greeting",
                    "agent_options": script(
                        {"write": {"path": "greeting.txt", "content": "hello\n"}},
                        on_message=[{"bash": "echo 'with tests' >> greeting.txt"}],
                    ),
                },
                {
                    "id": "review",
                    "type": "approval",
                    "message": "Diff of run #${steps.impl.number}",
                    "on_reject": {"step": "impl", "max_attempts": 2},
                },
                {"id": "ship", "type": "land", "step": "impl", "depends_on": ["review"]},
            ],
        },
    )
    execution = await execute(api, wf, git_repo)

    async def pending(attempt: int) -> None:
        with anyio.fail_after(20):
            while True:
                body = (await api.get(f"/api/workflows/executions/{execution}")).json()
                if {"key": "review", "attempt": attempt} in body["pending_approvals"]:
                    return
                assert body["status"] == "running", body
                await anyio.sleep(0.05)

    await pending(0)
    bad = await api.post(
        f"/api/workflows/executions/{execution}/steps/impl/decide", json={"decision": "approve"}
    )
    assert bad.status_code == 409 and "review" in bad.json()["detail"]
    resp = await api.post(
        f"/api/workflows/executions/{execution}/steps/review/decide",
        json={"decision": "reject", "reason": "add tests"},
    )
    assert resp.status_code == 200, resp.text
    await pending(1)
    await api.post(
        f"/api/workflows/executions/{execution}/steps/review/decide", json={"decision": "approve"}
    )
    body = await wait_execution(api, execution, "completed", "failed")
    assert body["status"] == "completed", (body["status_reason"], body["steps"])
    out = outputs(body)
    assert out["review"] == {"approved": True, "attempts": 2, "reason": None}
    run_id = out["impl"]["run_id"]
    events = (await api.get(f"/api/runs/{run_id}/events")).json()["data"]
    said = [e["data"]["text"] for e in events if e["type"] == "user.message"]
    assert said == ["A reviewer sent this work back (attempt 1): add tests"]
    assert (await api.get(f"/api/runs/{run_id}")).json()["status"] == "completed"
    show = await anyio.run_process(["git", "show", "main:greeting.txt"], cwd=git_repo)
    assert show.stdout.decode() == "hello\nwith tests\n"


async def test_each_small_step_type_extract_if_wait_foreach(
    sqlite_api: Api, git_repo: Path
) -> None:
    api = sqlite_api
    wf = await save(
        api,
        {
            "name": "kinds",
            "steps": [
                {
                    "id": "impl",
                    "type": "run",
                    "provider": "script",
                    "prompt": "p",
                    "agent_options": script({"say": "version: 2.5.1 done"}),
                },
                {"id": "seen", "type": "wait", "step": "impl", "status": ["review"]},
                {
                    "id": "ver",
                    "type": "extract",
                    "source": "${steps.impl.message}",
                    "regex": r"version: (\S+)",
                },
                {
                    "id": "meta",
                    "type": "shell",
                    "in": "impl",
                    "command": 'echo \'{"files": ["a", "b", "c"]}\'',
                },
                {
                    "id": "files",
                    "type": "extract",
                    "source": "${steps.meta.stdout}",
                    "jsonpath": "$.files",
                },
                {
                    "id": "big",
                    "type": "if",
                    "condition": "len(vars.files) > 2 and vars.ver == '2.5.1'",
                    "then": ["each"],
                    "else": ["never"],
                },
                {
                    "id": "each",
                    "type": "foreach",
                    "items": "${vars.files}",
                    "max_concurrency": 2,
                    "step": {
                        "id": "touch",
                        "type": "shell",
                        "in": "impl",
                        "command": "echo ${index}-${item} >> seen.txt",
                    },
                },
                {"id": "never", "type": "shell", "in": "impl", "command": "touch never.txt"},
            ],
        },
    )
    execution = await execute(api, wf, git_repo)
    body = await wait_execution(api, execution, "completed", "failed")
    assert body["status"] == "completed", (body["status_reason"], body["steps"])
    out = outputs(body)
    assert out["seen"]["status"] == "review"
    assert out["ver"]["value"] == "2.5.1"
    assert out["files"]["value"] == ["a", "b", "c"]
    assert out["big"] == {"value": True, "branch": "then"}
    assert out["never"]["skipped"] is True
    worktree = Path(out["impl"]["worktree"])
    assert sorted(worktree.joinpath("seen.txt").read_text().split()) == ["0-a", "1-b", "2-c"]
    assert not worktree.joinpath("never.txt").exists()
    events = (await api.get(f"/api/workflows/executions/{execution}/events")).json()["data"]
    types = [e["type"] for e in events]
    assert types[0] == "workflow.execution.started" and types[-1] == "workflow.execution.completed"
    assert types.count("workflow.step.skipped") == 1
    with anyio.fail_after(30):  # the stream replays from seq 2, then ends: the execution ended
        resp = await api.get(f"/api/workflows/executions/{execution}/events/stream?after=2")
    frames = [line[7:] for line in resp.text.splitlines() if line.startswith("event: ")]
    assert frames == types[2:]


async def test_best_of_three_compare_lands_the_passing_smallest_and_discards_the_rest(
    sqlite_api: Api, git_repo: Path
) -> None:
    api = sqlite_api
    variants = {
        "a": [{"write": {"path": "ok.txt", "content": "1\n2\n3\n4\n"}}],
        "b": [{"write": {"path": "ok.txt", "content": "1\n"}}],
        "c": [{"write": {"path": "bad.txt", "content": "x\n"}}],
    }
    wf = await save(
        api,
        {
            "name": "best-of-3",
            "steps": [
                {
                    "id": "try",
                    "type": "parallel",
                    "steps": [
                        {
                            "id": f"try_{k}",
                            "type": "run",
                            "provider": "script",
                            "prompt": "p",
                            "agent_options": script(*v),
                        }
                        for k, v in variants.items()
                    ],
                },
                {
                    "id": "pick",
                    "type": "compare",
                    "candidates": ["try"],
                    "check": "test -f ok.txt",
                    "land": "merge",
                },
            ],
        },
    )
    execution = await execute(api, wf, git_repo)
    body = await wait_execution(api, execution, "completed", "failed")
    assert body["status"] == "completed", (body["status_reason"], body["steps"])
    pick = outputs(body)["pick"]
    assert pick["winner"] == "try/try_b"
    assert [s["passed"] for s in pick["scores"]] == [True, True, False]
    runs = {k: outputs(body)[f"try/try_{k}"]["run_id"] for k in variants}
    statuses = {k: (await api.get(f"/api/runs/{r}")).json() for k, r in runs.items()}
    assert statuses["b"]["resolution"] == "merged"
    assert statuses["a"]["resolution"] == statuses["c"]["resolution"] == "discarded"
    show = await anyio.run_process(["git", "show", "main:ok.txt"], cwd=git_repo)
    assert show.stdout.decode() == "1\n"


async def test_cancel_stops_every_running_step(sqlite_api: Api, git_repo: Path) -> None:
    api = sqlite_api
    wf = await save(
        api,
        {
            "name": "slow",
            "steps": [
                {
                    "id": "fan",
                    "type": "parallel",
                    "steps": [
                        {
                            "id": f"s{i}",
                            "type": "run",
                            "provider": "script",
                            "prompt": "p",
                            "agent_options": script({"sleep": 60}),
                        }
                        for i in range(3)
                    ],
                },
            ],
        },
    )
    execution = await execute(api, wf, git_repo)
    with anyio.fail_after(20):
        while True:
            body = (await api.get(f"/api/workflows/executions/{execution}")).json()
            run_ids = [s["run_id"] for s in body["steps"] if s["run_id"]]
            if len(run_ids) == 3:
                states = [(await api.get(f"/api/runs/{r}")).json()["status"] for r in run_ids]
                if all(s == "running" for s in states):
                    break
            await anyio.sleep(0.05)
    with anyio.fail_after(20):
        resp = await api.post(f"/api/workflows/executions/{execution}/cancel")
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "cancelled"
    for run_id in run_ids:
        assert (await api.get(f"/api/runs/{run_id}")).json()["status"] == "cancelled"
    again = await api.post(f"/api/workflows/{body['workflow_id']}/executions/{execution}/cancel")
    assert again.status_code == 409


@pytest.mark.postgres
async def test_definitions_are_versioned_validated_and_loaded_from_the_repo(
    api: Api, git_repo: Path
) -> None:
    schema = (await api.get("/api/workflows/schema")).json()
    assert schema["title"] == "Codeyard workflow" and "RunStep" in schema["$defs"]

    bad = await api.post("/api/workflows", json={"source": "name: x\nsteps: [{id: a, type: run}]"})
    assert bad.status_code == 422
    assert ["definition", "steps", 0, "run", "prompt"] in [e["loc"] for e in bad.json()["errors"]]
    assert (await api.get("/api/workflows")).json()["data"] == []

    first = {
        "name": "one",
        "inputs": {"who": {"type": "string", "required": True}},
        "steps": [
            {
                "id": "a",
                "type": "run",
                "provider": "script",
                "prompt": "hi ${inputs.who}",
                "agent_options": script(
                    {"usage": {"input_tokens": 1, "output_tokens": 1, "cost_usd": 0.25}}
                ),
            }
        ],
    }
    wf = await save(api, first)
    dup = await api.post("/api/workflows", json={"definition": first})
    assert dup.status_code == 409

    missing = await api.post(f"/api/workflows/{wf}/execute", json={"repo_path": str(git_repo)})
    assert missing.status_code == 422 and "who: required" in missing.json()["detail"]
    assert (await api.get(f"/api/workflows/{wf}/executions")).json()["data"] == []

    execution = await execute(api, wf, git_repo, variables={"who": "v1"})
    changed = {**first, "steps": [{**first["steps"][0], "prompt": "bye ${inputs.who}"}]}
    resp = await api.request("PUT", f"/api/workflows/{wf}", json={"definition": changed})
    assert resp.status_code == 200 and resp.json()["version"] == 2
    body = await wait_execution(api, execution, "completed", "failed")
    assert body["workflow_version"] == 1 and body["spent_usd"] == 0.25
    run = (await api.get(f"/api/runs/{outputs(body)['a']['run_id']}")).json()
    assert run["prompt"] == "hi v1"  # the snapshot, not the new version
    listed = await api.get(f"/api/workflows/{wf}/executions", params={"status": "completed"})
    assert [e["id"] for e in listed.json()["data"]] == [execution]
    nested = await api.get(f"/api/workflows/{wf}/executions/{execution}")
    assert nested.status_code == 200 and nested.json()["id"] == execution
    versions = (await api.get(f"/api/workflows/{wf}")).json()["versions"]
    assert [v["version"] for v in versions] == [1, 2]

    dry = await api.post(
        f"/api/workflows/{wf}/validate", json={"variables": {}, "repo_path": str(git_repo)}
    )
    assert dry.status_code == 200, dry.text
    report = dry.json()
    assert report["valid"] is False and report["problems"][0]["msg"].startswith("required")
    assert report["estimate"]["usd"] == 0.25 and report["run_steps"][0]["provider"] == "script"
    assert report["graph"]["waves"] == [["a"]]

    folder = git_repo / ".codeyard" / "workflows"
    folder.mkdir(parents=True)
    (folder / "lint.yaml").write_text(
        "name: lint\nsteps:\n  - {id: a, type: run, provider: script, prompt: lint}\n"
    )
    (folder / "one.yaml").write_text(yaml.safe_dump({**first, "description": "from the repo"}))
    loaded = await api.post("/api/workflows/load", json={"repo_path": str(git_repo)})
    assert loaded.status_code == 200, loaded.text
    by_name = {w["name"]: w for w in loaded.json()["data"]}
    assert by_name["lint"]["version"] == 1 and by_name["lint"]["origin"].endswith("lint.yaml")
    assert by_name["one"]["version"] == 3 and by_name["one"]["id"] == wf

    gone = await api.post(
        "/api/workflows/executions/wfx_nope/steps/a/decide", json={"decision": "approve"}
    )
    assert gone.status_code == 404
    assert (await api.delete(f"/api/workflows/{wf}")).status_code == 204
    assert (await api.get(f"/api/workflows/{wf}")).status_code == 404
    # The execution keeps its snapshot and log.
    assert (await api.get(f"/api/workflows/executions/{execution}")).status_code == 200


async def test_run_steps_draw_on_the_execution_budget_and_when_skips(
    sqlite_api: Api, git_repo: Path
) -> None:
    api = sqlite_api
    costly = script({"usage": {"input_tokens": 1, "output_tokens": 1, "cost_usd": 0.25}})
    wf = await save(
        api,
        {
            "name": "budgeted",
            "budget_usd": 0.25,
            "steps": [
                {
                    "id": "a",
                    "type": "run",
                    "provider": "script",
                    "prompt": "p",
                    "agent_options": costly,
                },
                {
                    "id": "quiet",
                    "type": "shell",
                    "in": "a",
                    "command": "true",
                    "when": "steps.a.cost_usd > 1",
                },
                {
                    "id": "b",
                    "type": "run",
                    "provider": "script",
                    "prompt": "p",
                    "agent_options": costly,
                    "depends_on": ["quiet"],
                },
            ],
        },
    )
    execution = await execute(api, wf, git_repo)
    body = await wait_execution(api, execution, "completed", "failed")
    assert body["status"] == "failed"
    assert "step 'b' failed: the execution's budget ($0.25) is spent" in body["status_reason"]
    assert body["spent_usd"] == 0.25
    out = outputs(body)
    assert out["quiet"]["skipped"] is True and "is false" in out["quiet"]["reason"]
    runs = (await api.get("/api/runs")).json()["data"]
    assert len(runs) == 1 and runs[0]["budget_usd"] == 0.25
