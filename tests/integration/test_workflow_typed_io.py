"""Typed workflow inputs and outputs end to end (issue 20): the ASGI app over httpx, real SQLite,
real git and the script agent. A wrong input is a 422 naming it before anything is created; an
output is checked when the execution ends, and a mismatch fails the execution naming the output."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Api
from tests.integration.test_workflows import execute, save, script, wait_execution

pytestmark = pytest.mark.anyio

DEFINITION = {
    "name": "typed",
    "inputs": {
        "word": {"type": "string", "required": True, "minLength": 1},
        "tries": {"type": "integer", "default": 1, "minimum": 1, "maximum": 3},
    },
    "steps": [
        {
            "id": "impl",
            "type": "run",
            "provider": "script",
            "prompt": "count the files",
            "agent_options": script({"say": "found ${inputs.word} files"}),
        },
        {
            "id": "count",
            "type": "extract",
            "source": "${steps.impl.message}",
            "regex": r"found (\S+) files",
        },
    ],
    "outputs": {
        "count": {"value": "${vars.count}", "type": "integer", "minimum": 0},
        "tries": {"value": "${inputs.tries}", "type": "integer"},
        "note": "counted ${vars.count}",
    },
}


async def test_inputs_are_checked_and_outputs_typed(sqlite_api: Api, git_repo: Path) -> None:
    api = sqlite_api
    wf = await save(api, DEFINITION)

    bad = await api.post(
        f"/api/workflows/{wf}/execute",
        json={"repo_path": str(git_repo), "variables": {"word": 7, "tries": 9}},
    )
    assert bad.status_code == 422, bad.text
    problem = bad.json()
    assert "word: 7 is not of type 'string' (send a string)" in problem["detail"]
    assert "tries: 9 is greater than the maximum of 3 (send an integer)" in problem["detail"]
    assert [e["loc"] for e in problem["errors"]] == [
        ["body", "variables", "tries"],  # the saved YAML's key order
        ["body", "variables", "word"],
    ]
    assert (await api.get(f"/api/workflows/{wf}/executions")).json()["data"] == []

    dry = await api.post(f"/api/workflows/{wf}/validate", json={"variables": {"tries": 2}})
    assert dry.status_code == 200, dry.text
    assert dry.json()["problems"] == [
        {"loc": ["body", "variables", "word"], "msg": "required (send a string)"}
    ]
    static = await api.post(
        "/api/workflows/validate",
        json={"definition": {**DEFINITION, "inputs": {"n": {"type": "integer", "default": "x"}}}},
    )
    assert static.status_code == 422
    assert static.json()["errors"][0]["loc"] == ["definition", "inputs", "n", "default"]

    good = await execute(api, wf, git_repo, variables={"word": "7"})
    body = await wait_execution(api, good, "completed", "failed")
    assert body["status"] == "completed", body["status_reason"]
    assert body["inputs"] == {"word": "7", "tries": 1}
    assert body["outputs"] == {"count": 7, "tries": 1, "note": "counted 7"}

    wrong = await execute(api, wf, git_repo, variables={"word": "seven"})
    body = await wait_execution(api, wrong, "completed", "failed")
    assert body["status"] == "failed"
    assert body["status_reason"] == (
        "output 'count' (integer) is wrong: 'seven' is not of type 'integer'"
    )
    assert body["outputs"] == {}
    assert [s["status"] for s in body["steps"]] == ["completed", "completed"]
