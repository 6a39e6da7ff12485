"""The real Codex binary (pinned by the openai-codex SDK) against the fake model server: what
only Codex shows — patches (asked, approved or rejected), usage per model call, a server error in
its own words, steered messages it refuses or drops at a turn's end or a pause.

The scenarios every agent shares (tool calls, a message resuming the thread, asks, pause and
resume, a restart, a lost thread, messages mid-turn, a model error, cancel) are in the contract
suite, ``test_agent_contract.py``, with Codex's case in ``agent_cases.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import anyio
import pytest

from codeyard.agents.base import TurnContext, TurnEnd
from codeyard.agents.codex import CodexProvider
from codeyard.agents.codex import turn as codex_turn
from codeyard.domain.tools import Decision, ToolRequest
from codeyard.store import runs as run_store
from codeyard.testing.fake_llm import FakeLLM, HttpError, Reply, ToolCall, Usage
from tests.clis.support import (
    approvals,
    end_recorded_while_exiting,
    events,
    wait_for_process,
    wait_model_calls,
    worktree,
)
from tests.conftest import Api

pytestmark = pytest.mark.anyio

MODEL = "gpt-5-codex"
WAIT = 60.0
_PROBLEM = CodexProvider().problem()


@pytest.fixture(autouse=True)
def _needs_codex() -> None:
    if _PROBLEM is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"Codex must run in CI: {_PROBLEM}")
    pytest.skip(f"Codex cannot run here: {_PROBLEM}")


def options(fake: FakeLLM, home: Path, **extra: Any) -> dict[str, Any]:
    """Codex pointed at the fake server, with its state in the test's directory."""
    (home / ".codex").mkdir(parents=True, exist_ok=True)
    provider = {
        "name": "Fake",
        "base_url": f"{fake.url}/v1",
        "env_key": "FAKE_API_KEY",
        "wire_api": "responses",
        "request_max_retries": 0,
        "stream_max_retries": 0,
    }
    env = {"CODEX_HOME": str(home / ".codex"), "HOME": str(home), "FAKE_API_KEY": "test"}
    config = {"model_provider": "fake", "model_providers.fake": provider}
    return {"env": env, "config": config, **extra}


def shell(command: str) -> ToolCall:
    return ToolCall("exec_command", {"cmd": command})


def patch_adding(path: str, line: str) -> ToolCall:
    """A patch the way Codex models send one through the shell (it asks a fileChange)."""
    body = f"*** Begin Patch\n*** Add File: {path}\n+{line}\n*** End Patch\n"
    return shell(f"apply_patch <<'EOF'\n{body}EOF\n")


async def create(
    api: Api, repo: Path, opts: dict[str, Any], prompt: str, **extra: Any
) -> dict[str, Any]:
    body = {
        "prompt": prompt,
        "repo_path": str(repo),
        "provider": "codex",
        "model": MODEL,
        "agent_options": opts,
        **extra,
    }
    resp = await api.post("/api/runs", json=body)
    assert resp.status_code == 201, resp.text
    run: dict[str, Any] = resp.json()
    return run


async def test_commands_and_patches_change_the_worktree_and_events_are_normalized(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    api = sqlite_api
    fake.script(
        [
            Reply(
                text="I will run a command.", tool_calls=(shell("echo ran > ran.txt && echo ok"),)
            ),
            Reply(tool_calls=(patch_adding("hello.txt", "hi"),)),
            Reply(text="All done.", usage=Usage(200, 30, 50)),
        ]
    )
    opts = options(fake, tmp_path / "home", instructions="Sign every answer CODEYARD-MARKER-7.")
    run = await create(api, git_repo, opts, "Create two files please")
    done = await api.wait_status(run["id"], "review", "failed", timeout=WAIT)
    assert done["status"] == "review", done

    tree = worktree(api, run)
    assert (tree / "ran.txt").read_text() == "ran\n"
    assert (tree / "hello.txt").read_text() == "hi\n"
    assert done["diff_stats"]["files"] == 2

    by_type: dict[str, list[dict[str, Any]]] = {}
    for e in await events(api, run["id"]):
        by_type.setdefault(e["type"], []).append(e["data"])
    session = by_type["agent.session"][0]
    assert session["provider"] == "codex" and session["cli_version"]
    assert session["model"] == MODEL and done["session_id"] == session["session_id"]
    calls = by_type["tool.call"]
    assert [(c["tool"], c["kind"]) for c in calls] == [("shell", "bash"), ("apply_patch", "write")]
    assert calls[0]["title"] == "$ echo ran > ran.txt && echo ok"
    assert calls[0]["input"]["command"] == "echo ran > ran.txt && echo ok"
    assert calls[1]["input"]["changes"] == [{"path": str(tree / "hello.txt"), "kind": "add"}]
    results = by_type["tool.result"]
    assert [r["ok"] for r in results] == [True, True]
    assert results[0]["exit_code"] == 0 and "ok" in results[0]["output"]
    assert [d["decision"] for d in by_type["policy.decision"]] == ["allow", "allow"]
    assert [m["text"] for m in by_type["agent.message"]] == ["I will run a command.", "All done."]
    completed = by_type["turn.completed"][0]
    assert completed["stop_reason"] == "end_turn" and completed["result"] == "All done."

    # Usage: one event per model call, the differences of Codex's running totals.
    usages = by_type["usage"]
    assert [(u["input_tokens"], u["output_tokens"]) for u in usages] == [
        (100, 12),
        (100, 12),
        (150, 30),  # Codex counts the 50 cached tokens inside its 200: ours are disjoint
    ]
    assert usages[-1]["cache_read_tokens"] == 50 and usages[-1]["model"] == MODEL
    assert done["usage"]["input_tokens"] == 350 and done["usage"]["output_tokens"] == 54

    # What Codex sent: our model and instructions, the prompt.
    first = fake.model_calls("openai-responses")[0]
    assert first.model == MODEL
    assert "CODEYARD-MARKER-7" in first.text() and "Create two files please" in first.text()


async def test_codexs_plugins_are_off_unless_the_run_turns_them_on(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    """Codeyard's default ``features.plugins = false`` reaches Codex: it does not sync its
    plugin marketplace at start (the sync's lock file in ``CODEX_HOME``), and a run's own
    ``config`` brings the plugins back."""
    api = sqlite_api
    locks = {}
    for plugins in (None, True):
        fake.script([Reply(text="Hi.")])
        home = tmp_path / f"home-{plugins}"
        opts = options(fake, home)
        if plugins is not None:
            opts["config"]["features.plugins"] = plugins
        run = await create(api, git_repo, opts, "Say hi")
        done = await api.wait_status(run["id"], "review", "failed", timeout=WAIT)
        assert done["status"] == "review", done
        locks[plugins] = (home / ".codex" / ".tmp" / "plugins.sync.lock").exists()
    assert locks == {None: False, True: True}


async def test_a_server_error_is_shown_in_codexs_own_words(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    """Codex shows its own text for a server error and names its kind (a request error passes
    the API's message on: the contract suite's model-error case)."""
    api = sqlite_api
    body = {"error": {"message": "upstream says no: XYZZY", "type": "invalid_request_error"}}
    fake.script([Reply(http_error=HttpError(500, body))])
    run = await create(api, git_repo, options(fake, tmp_path / "home"), "Fail please")
    done = await api.wait_status(run["id"], "review", "failed", timeout=WAIT)
    assert done["status"] == "failed", done
    reason = done["status_reason"]
    assert reason.startswith("Codex failed the turn: ") and "internalServerError" in reason
    assert "Its last output" not in reason  # Codex's stderr chatter stays in the logs
    assert len(fake.model_calls("openai-responses")) == 1  # no retries were configured


async def test_the_turns_end_is_recorded_while_the_app_server_exits(
    sqlite_api: Api,
    git_repo: Path,
    fake: FakeLLM,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Codex has saved the thread when it reports the turn completed: the turn's end is recorded
    while its app-server is stopped (``TurnEnd.exiting``); the run's task lives until it is
    gone."""
    fake.script([Reply(text="Hi there.")])
    home = tmp_path / "home"
    await end_recorded_while_exiting(
        sqlite_api,
        codex_turn,
        monkeypatch,
        lambda: create(sqlite_api, git_repo, options(fake, home), "Say hi"),
        "app-server",
    )


async def pending_messages(api: Api, run_id: str) -> list[Any]:
    async with api.services.engine.connect() as conn:
        return list((await run_store.get(conn, run_id))["pending_messages"])


async def test_a_message_after_codex_ended_the_turn_is_refused_and_stays_queued(
    git_repo: Path, fake: FakeLLM, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Codex refuses a steer once its turn is over: the message is not taken in (it stays on
    the run's queue, where the executor starts the next turn with it) and no model saw it."""
    caplog.set_level(logging.INFO, "codeyard.agents.codex")
    fake.script([Reply(text="Done already.")])
    ended = asyncio.Event()
    offered: list[str] = []
    taken: list[int] = []

    async def next_messages() -> list[str]:
        if offered:
            await asyncio.Event().wait()  # nothing more is sent this turn
        await ended.wait()
        offered.append("Too late: LATE-9")
        return offered[:]

    async def messages_taken(count: int) -> None:
        taken.append(count)

    async def decide(request: ToolRequest) -> Decision:
        return Decision(True)

    async def ask_operator(question: str) -> str:
        raise AssertionError(question)

    ctx = TurnContext(
        run_id="r-late",
        turn=1,
        prompt="Finish fast",
        source="create",
        worktree=git_repo,
        model=MODEL,
        options=options(fake, tmp_path / "home"),
        session_id=None,
        resume_state={},
        resumed_source=None,
        decide=decide,
        ask_operator=ask_operator,
        next_messages=next_messages,
        messages_taken=messages_taken,
    )
    ends: list[TurnEnd] = []
    async with contextlib.aclosing(CodexProvider().run_turn(ctx)) as items:
        async for item in items:
            if isinstance(item, TurnEnd):  # Codex has reported the turn completed
                ends.append(item)
                ended.set()
                with anyio.fail_after(WAIT):
                    while "Codex took no message" not in caplog.text:
                        await anyio.sleep(0.02)
    assert [e.result for e in ends] == ["Done already."]
    assert offered == ["Too late: LATE-9"] and taken == []
    assert "turn/steer: no active turn to steer" in caplog.text
    calls = fake.model_calls("openai-responses")
    assert len(calls) == 1 and "LATE-9" not in calls[0].text()


async def test_a_message_accepted_but_not_taken_in_before_a_pause_starts_the_next_turn(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Codex drops steered input it has not yet added to the turn when the turn is interrupted:
    the message stays queued until Codex takes it in, so it starts the turn after the pause."""
    api = sqlite_api
    caplog.set_level(logging.INFO, "codeyard.agents.codex")
    blocking = "sleep 123"
    fake.script(
        [
            Reply(
                tool_calls=(ToolCall("exec_command", {"cmd": blocking, "yield_time_ms": 60000}),)
            ),
            Reply(text="Answered PAUSED-3."),
        ]
    )
    run = await create(api, git_repo, options(fake, tmp_path / "home"), "Nap long")
    await wait_model_calls(fake, 1)
    await wait_for_process(worktree(api, run), blocking)
    resp = await api.post(f"/api/runs/{run['id']}/messages", json={"text": "Then PAUSED-3"})
    assert resp.status_code == 202, resp.text
    with anyio.fail_after(WAIT):  # the steer's answer is logged only: nothing to wait on instead
        while "Codex accepted message" not in caplog.text:
            await anyio.sleep(0.02)
    resp = await api.post(f"/api/runs/{run['id']}/pause")
    assert resp.status_code == 200, resp.text
    await api.wait_status(run["id"], "paused", timeout=WAIT)
    await api.services.executor.wait_stopped(run["id"])
    assert await pending_messages(api, run["id"]) == ["Then PAUSED-3"]
    assert len(fake.model_calls("openai-responses")) == 1
    resp = await api.post(f"/api/runs/{run['id']}/resume", json={})
    assert resp.status_code == 200, resp.text
    done = await api.wait_status(run["id"], "review", "failed", timeout=WAIT)
    assert done["status"] == "review" and done["turns"] == 2, done
    started = [e["data"] for e in await events(api, run["id"], "turn.started")]
    assert [(t["source"], t["prompt"]) for t in started] == [
        ("create", "Nap long"),
        ("message", "Then PAUSED-3"),
    ]
    calls = fake.model_calls("openai-responses")
    assert len(calls) == 2 and calls[1].text().count("Then PAUSED-3") == 1
    assert await pending_messages(api, run["id"]) == []


async def test_policy_rejected_patch_leaves_no_file_and_the_model_is_told(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    api = sqlite_api
    pol = await api.post(
        "/api/policies",
        json={"name": "ask-patches", "rules": [{"tool": "apply_patch", "action": "ask"}]},
    )
    assert pol.status_code == 201, pol.text
    pset = await api.post("/api/policy-sets", json={"name": "s", "policy_ids": [pol.json()["id"]]})
    fake.script([Reply(tool_calls=(patch_adding("nope.txt", "no"),)), Reply(text="Understood.")])
    opts = options(fake, tmp_path / "home")
    run = await create(api, git_repo, opts, "Write nope.txt", policy_set_ids=[pset.json()["id"]])
    pending = (await approvals(api, run["id"]))[0]
    assert pending["tool"] == "apply_patch" and pending["kind"] == "write"
    resp = await api.post(
        f"/api/approvals/{pending['id']}/resolve",
        json={"decision": "rejected", "reason": "no new files today"},
    )
    assert resp.status_code == 200, resp.text
    done = await api.wait_status(run["id"], "review", "failed", timeout=WAIT)
    assert done["status"] == "review", done
    tree = worktree(api, run)
    assert not (tree / "nope.txt").exists()
    assert done["diff_stats"]["files"] == 0
    calls = [e["data"] for e in await events(api, run["id"], "tool.call")]
    assert [(c["tool"], c["kind"]) for c in calls] == [("apply_patch", "write")]
    results = [e["data"] for e in await events(api, run["id"], "tool.result")]
    assert len(results) == 1 and results[0]["ok"] is False
    assert "no new files today" in results[0]["error"]
    # The model got the declined call's output and, in the same call, the reason.
    sent = fake.model_calls("openai-responses")
    assert len(sent) == 2
    output, told = sent[1].body["input"][-2:]
    assert output["type"] == "function_call_output" and "rejected" in output["output"]
    assert told["role"] == "user"
    assert "Codeyard policy denied this tool call: no new files today" in json.dumps(told)
