"""The utility model against ``codeyard fake-llm`` over loopback: the setting (key from an env
set), structured answers validated and retried once, spend recorded; natural language → shell
judged by the run's policy and pasted into the terminal but never executed; run names."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codeyard.testing.fake_llm import FakeLLM
from codeyard.testing.fake_llm.script import parse_replies
from tests.conftest import Api, make_repo
from tests.integration.test_terminals import BASH, ready_run, screen_until

pytestmark = pytest.mark.anyio


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


async def configure(api: Api, fake: FakeLLM, backend: str = "openai") -> None:
    env = await api.post(
        "/api/env-sets",
        json={"name": f"helper-{backend}", "variables": {"HELPER_KEY": "sk-fake-1"}},
    )
    assert env.status_code == 201, env.text
    base = f"{fake.url}/v1" if backend == "openai" else fake.url
    body = {
        "config": {
            "backend": backend,
            "model": "gpt-4.1-mini" if backend == "openai" else "claude-haiku-4-5",
            "base_url": base,
            "env_set_id": env.json()["id"],
            "key_variable": "HELPER_KEY",
        }
    }
    resp = await api.client.put("/api/settings/utility-model", json=body)
    assert resp.status_code == 200, resp.text
    assert "sk-fake-1" not in resp.text


async def test_nl_to_shell_is_pasted_never_executed(
    sqlite_api: Api, fake: FakeLLM, tmp_path: Path
) -> None:
    api = sqlite_api
    repo = make_repo(tmp_path / "site", {"README.md": "# hi\n"})
    run = await ready_run(api, repo)
    term = (await api.post("/api/terminals", json={"run_id": run["id"], "command": BASH})).json()
    await api.post(f"/api/terminals/{term['id']}/text", json={"text": "echo READY\r"})
    await screen_until(api, term["id"], "READY")

    unconfigured = await api.post(
        "/api/terminals/ask", json={"terminal_id": term["id"], "text": "make a marker"}
    )
    assert unconfigured.status_code == 409 and "utility-model" in unconfigured.json()["detail"]

    await configure(api, fake)
    answer = {"command": "touch EXECUTED && echo DONE", "explanation": "Creates a marker file."}
    fake.script(parse_replies([{"text": "Sure! here it is"}, {"text": json.dumps(answer)}])[0])
    resp = await api.post(
        "/api/terminals/ask", json={"terminal_id": term["id"], "text": "make a marker file"}
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["command"] == answer["command"] and body["attempts"] == 2  # retried once
    assert body["inserted"] is True and body["verdict"]["action"] == "allow"  # tests run in auto

    calls = fake.model_calls()
    assert len(calls) == 2
    assert calls[0].headers.get("authorization") == "Bearer sk-fake-1"
    sent = json.dumps(calls[0].body)
    assert "make a marker file" in sent and "READY" in sent  # the request and recent screen
    assert "not valid" in json.dumps(calls[1].body)  # the retry names the problem

    lines = await screen_until(api, term["id"], "bash")
    await asyncio.sleep(1.0)  # give a wrongly pressed Enter every chance to run
    lines = (await api.get(f"/api/terminals/{term['id']}/output")).json()["lines"]
    assert any("touch EXECUTED && echo DONE" in line for line in lines), lines
    assert not any(line.strip() == "DONE" for line in lines)
    assert not (Path(term["cwd"]) / "EXECUTED").exists()

    spent = (await api.get("/api/settings/utility-model")).json()["usage"]
    assert spent["calls"] == 2 and spent["input_tokens"] > 0 and spent["output_tokens"] > 0
    await api.delete(f"/api/terminals/{term['id']}")


async def test_a_denied_command_is_shown_but_not_pasted(
    sqlite_api: Api, fake: FakeLLM, tmp_path: Path
) -> None:
    api = sqlite_api
    await configure(api, fake)
    gates = await api.client.put(
        "/api/settings", json={"gates": {"rm-rf-outside-worktree": "deny"}}
    )
    assert gates.status_code == 200, gates.text
    repo = make_repo(tmp_path / "site", {"README.md": "# hi\n"})
    run = await ready_run(api, repo)
    term = (await api.post("/api/terminals", json={"run_id": run["id"], "command": BASH})).json()
    bad = {"command": "rm -rf /home", "explanation": "Frees space."}
    fake.script(parse_replies([{"text": json.dumps(bad)}])[0])
    resp = await api.post(
        "/api/terminals/ask", json={"terminal_id": term["id"], "text": "free space"}
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["verdict"]["action"] == "deny" and body["inserted"] is False
    await asyncio.sleep(0.3)
    lines = (await api.get(f"/api/terminals/{term['id']}/output")).json()["lines"]
    assert not any("rm -rf" in line for line in lines)
    await api.delete(f"/api/terminals/{term['id']}")


async def test_run_names_through_the_anthropic_backend(
    sqlite_api: Api, fake: FakeLLM, tmp_path: Path
) -> None:
    api = sqlite_api
    await configure(api, fake, "anthropic")
    repo = make_repo(tmp_path / "site", {"README.md": "# hi\n"})
    run = await ready_run(api, repo)
    named = [
        {"tool_calls": [{"name": "answer", "input": {"title": "Add a file", "branch": b}}]}
        for b in ("Bad Name", "add-file")
    ]
    fake.script(parse_replies(named)[0])
    resp = await api.post(f"/api/runs/{run['number']}/suggest-names")
    assert resp.status_code == 200, resp.text
    assert resp.json() == {
        "run_id": run["id"],
        "title": "Add a file",
        "branch": "add-file",
        "attempts": 2,
    }
    calls = fake.model_calls()
    assert calls[0].headers.get("x-api-key") == "sk-fake-1"
    assert calls[0].body["tool_choice"] == {"type": "tool", "name": "answer"}

    fake.script(parse_replies([{"text": "no"}, {"text": "still no"}])[0])
    failed = await api.post(f"/api/runs/{run['number']}/suggest-names")
    assert failed.status_code == 409 and "twice" in failed.json()["detail"]


async def test_the_setting_is_validated(sqlite_api: Api) -> None:
    api = sqlite_api
    bad: list[dict[str, Any]] = [
        {"config": {"backend": "openai", "model": "m", "base_url": "ftp://x"}},
        {"config": {"backend": "gemini", "model": "m"}},
        {"config": {"backend": "openai", "model": "m", "env_set_id": "env_nope"}},
    ]
    for body in bad:
        resp = await api.client.put("/api/settings/utility-model", json=body)
        assert resp.status_code == 422, resp.text
    assert (await api.get("/api/settings/utility-model")).json()["config"] is None
