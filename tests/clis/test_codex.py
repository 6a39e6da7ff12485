"""The real Codex binary (pinned by the openai-codex SDK) against the fake model server, driven
through the Codeyard API: tool calls and patches, approvals from a policy, pause and resume,
messages during a turn and after it on the same thread, model API errors, and cancel without
orphans.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from codeyard.agents.base import TurnContext, TurnEnd
from codeyard.agents.codex import CodexProvider
from codeyard.config import Settings
from codeyard.domain.tools import Decision, ToolRequest
from codeyard.store import runs as run_store
from codeyard.testing.fake_llm import FakeLLM, HttpError, Reply, ToolCall, Usage
from tests.clis.support import (
    approvals,
    events,
    processes_in,
    wait_for_process,
    wait_model_calls,
    worktree,
)
from tests.conftest import Api, running_api

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


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


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


async def test_policy_asks_and_approve_runs_while_reject_is_explained(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    api = sqlite_api
    pol = await api.post(
        "/api/policies",
        json={
            "name": "ask-marked",
            "rules": [{"tool": "shell", "command": "approved|rejected", "action": "ask"}],
        },
    )
    assert pol.status_code == 201, pol.text
    pset = await api.post("/api/policy-sets", json={"name": "s", "policy_ids": [pol.json()["id"]]})
    fake.script(
        [
            Reply(tool_calls=(shell("echo yes > approved.txt"),)),
            Reply(tool_calls=(shell("echo no > rejected.txt"),)),
            Reply(text="Done."),
        ]
    )
    opts = options(fake, tmp_path / "home")
    run = await create(api, git_repo, opts, "Ask first", policy_set_ids=[pset.json()["id"]])
    first = (await approvals(api, run["id"]))[0]
    assert first["tool"] == "shell" and first["kind"] == "bash"
    assert (await api.get(f"/api/runs/{run['id']}")).json()["status"] == "waiting"
    resp = await api.post(f"/api/approvals/{first['id']}/resolve", json={"decision": "approved"})
    assert resp.status_code == 200, resp.text
    second = (await approvals(api, run["id"]))[0]
    assert second["id"] != first["id"]
    resp = await api.post(
        f"/api/approvals/{second['id']}/resolve",
        json={"decision": "rejected", "reason": "not in this repository"},
    )
    assert resp.status_code == 200, resp.text
    done = await api.wait_status(run["id"], "review", "failed", timeout=WAIT)
    assert done["status"] == "review", done
    tree = worktree(api, run)
    assert (tree / "approved.txt").read_text() == "yes\n"
    assert not (tree / "rejected.txt").exists()
    results = [e["data"] for e in await events(api, run["id"], "tool.result")]
    assert [r["ok"] for r in results] == [True, False]
    assert "not in this repository" in results[1]["error"]
    # The model was told why, right after the declined call's output, in words that steer it
    # away from retrying; and no extra model call was needed to tell it.
    calls = fake.model_calls("openai-responses")
    assert len(calls) == 3
    last_items = calls[2].body["input"][-2:]
    assert last_items[0]["type"] == "function_call_output"
    assert "rejected" in last_items[0]["output"]
    told = json.dumps(last_items[1])
    assert last_items[1]["role"] == "user"
    assert "Codeyard policy denied this tool call: not in this repository" in told
    assert "Do not retry" in told


async def test_message_in_review_resumes_the_same_thread(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    api = sqlite_api
    fake.script([Reply(text="First answer ALPHA."), Reply(text="Second answer.")])
    run = await create(api, git_repo, options(fake, tmp_path / "home"), "Say alpha")
    first = await api.wait_status(run["id"], "review", "failed", timeout=WAIT)
    assert first["status"] == "review", first
    resp = await api.post(f"/api/runs/{run['id']}/messages", json={"text": "Now say BRAVO"})
    assert resp.status_code == 202, resp.text
    await wait_model_calls(fake, 2)
    second = await api.wait_status(run["id"], "review", "failed", timeout=WAIT)
    assert second["status"] == "review" and second["turns"] == 2, second
    assert second["session_id"] == first["session_id"]
    sent = fake.model_calls("openai-responses")[-1]
    assert "Say alpha" in sent.text() and "First answer ALPHA." in sent.text()
    assert "Now say BRAVO" in sent.text()
    assert sent.headers.get("thread-id") == first["session_id"]
    sessions = [e["data"]["session_id"] for e in await events(api, run["id"], "agent.session")]
    assert sessions == [first["session_id"]] * 2
    # The resumed thread's history is not counted again.
    usages = [e["data"] for e in await events(api, run["id"], "usage")]
    assert [u["input_tokens"] for u in usages] == [100, 100]


async def test_pause_interrupts_and_resume_continues_the_thread(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    api = sqlite_api
    caplog.set_level(logging.INFO, "codeyard.agents.codex")
    fake.script([Reply(text="too late", delay=600), Reply(text="Resumed and finished.")])
    run = await create(api, git_repo, options(fake, tmp_path / "home"), "Work slowly")
    await wait_model_calls(fake, 1)
    tree = worktree(api, run)
    assert processes_in(tree), "Codex should be running in the worktree"
    resp = await api.post(f"/api/runs/{run['id']}/pause")
    assert resp.status_code == 200, resp.text
    paused = await api.wait_status(run["id"], "paused", timeout=WAIT)
    assert paused["session_id"], "the thread id is kept for resume"
    await api.services.executor.wait_stopped(run["id"])
    assert processes_in(tree) == []
    # Stopped through the protocol first: Codex answered turn/interrupt by ending the turn.
    assert "Codex ended the turn: interrupted" in caplog.text
    resp = await api.post(f"/api/runs/{run['id']}/resume", json={})
    assert resp.status_code == 200, resp.text
    done = await api.wait_status(run["id"], "review", "failed", timeout=WAIT)
    assert done["status"] == "review", done
    assert done["session_id"] == paused["session_id"]
    sent = fake.model_calls("openai-responses")[-1].text()
    assert "Work slowly" in sent and "Continue the task from where you left off" in sent


async def test_server_restart_interrupts_and_resume_continues(
    sqlite_settings: Settings, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    fake.script([Reply(text="too late", delay=600), Reply(text="Back after the restart.")])
    async with running_api(sqlite_settings) as api:
        run = await create(api, git_repo, options(fake, tmp_path / "home"), "Survive a restart")
        await wait_model_calls(fake, 1)
        tree = worktree(api, run)
        assert processes_in(tree)
    assert processes_in(tree) == [], "stopping the server must stop its agents"
    async with running_api(sqlite_settings) as api:
        stopped = (await api.get(f"/api/runs/{run['id']}")).json()
        assert stopped["status"] == "interrupted" and stopped["session_id"]
        resp = await api.post(f"/api/runs/{run['id']}/resume", json={})
        assert resp.status_code == 200, resp.text
        done = await api.wait_status(run["id"], "review", "failed", timeout=WAIT)
        assert done["status"] == "review", done
        assert done["session_id"] == stopped["session_id"]
    sent = fake.model_calls("openai-responses")[-1].text()
    assert "Survive a restart" in sent and "Continue the task from where you left off" in sent


async def test_a_lost_thread_starts_a_new_one_and_says_so(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    api = sqlite_api
    fake.script([Reply(text="First."), Reply(text="Fresh start.")])
    home = tmp_path / "home"
    run = await create(api, git_repo, options(fake, home), "Remember me")
    first = await api.wait_status(run["id"], "review", "failed", timeout=WAIT)
    assert first["status"] == "review", first
    shutil.rmtree(home / ".codex" / "sessions")  # Codex's thread files are gone
    resp = await api.post(f"/api/runs/{run['id']}/messages", json={"text": "Still there?"})
    assert resp.status_code == 202, resp.text
    await wait_model_calls(fake, 2)
    second = await api.wait_status(run["id"], "review", "failed", timeout=WAIT)
    assert second["status"] == "review", second
    assert second["session_id"] and second["session_id"] != first["session_id"]
    errors = [e["data"] for e in await events(api, run["id"], "error")]
    assert errors and "new thread" in errors[0]["message"]
    assert errors[0]["detail"] == first["session_id"]
    assert "Remember me" not in fake.model_calls("openai-responses")[-1].text()


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        # Codex shows its own text for server errors, and names the kind of error.
        (500, "internalServerError"),
        # For request errors it passes the API's body on; its message is what is shown.
        (400, "Codex failed the turn: upstream says no: XYZZY (other)"),
    ],
)
async def test_model_api_error_fails_the_run_with_its_message(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path, status: int, expected: str
) -> None:
    api = sqlite_api
    body = {"error": {"message": "upstream says no: XYZZY", "type": "invalid_request_error"}}
    fake.script([Reply(http_error=HttpError(status, body))])
    run = await create(api, git_repo, options(fake, tmp_path / "home"), "Fail please")
    done = await api.wait_status(run["id"], "review", "failed", timeout=WAIT)
    assert done["status"] == "failed", done
    reason = done["status_reason"]
    assert reason.startswith("Codex failed the turn: ") and expected in reason
    assert "Its last output" not in reason  # Codex's stderr chatter stays in the logs
    assert len(fake.model_calls("openai-responses")) == 1  # no retries were configured


async def test_cancel_mid_command_leaves_no_process(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    api = sqlite_api
    blocking = "sleep 321"
    fake.script(
        [
            Reply(
                tool_calls=(ToolCall("exec_command", {"cmd": blocking, "yield_time_ms": 60000}),)
            ),
            Reply(text="never reached", delay=600),
        ]
    )
    run = await create(api, git_repo, options(fake, tmp_path / "home"), "Wait a while")
    await wait_model_calls(fake, 1)
    tree = worktree(api, run)
    await wait_for_process(tree, blocking)
    resp = await api.post(f"/api/runs/{run['id']}/cancel")
    assert resp.status_code == 200, resp.text
    with anyio.fail_after(30):
        await api.wait_status(run["id"], "cancelled", timeout=30)
        await api.services.executor.wait_stopped(run["id"])
    assert processes_in(tree) == [], "no process of the cancelled turn may survive"
    assert not [cmd for _, cmd in _all_processes() if blocking in cmd]


def _all_processes() -> list[tuple[int, str]]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if stat[stat.rfind(")") + 2] != "Z":
                found.append((int(entry.name), cmd))
    return found


async def pending_messages(api: Api, run_id: str) -> list[Any]:
    async with api.services.engine.connect() as conn:
        return list((await run_store.get(conn, run_id))["pending_messages"])


async def test_message_mid_turn_is_steered_into_the_running_turn(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    """A message sent while a command runs reaches the model with the command's output."""
    api = sqlite_api
    fake.script(
        [
            Reply(tool_calls=(shell("sleep 3 && echo slept"),)),
            Reply(text="Noted the extra request."),
        ]
    )
    run = await create(api, git_repo, options(fake, tmp_path / "home"), "Take a nap")
    await wait_model_calls(fake, 1)
    await wait_for_process(worktree(api, run), "sleep 3")
    resp = await api.post(f"/api/runs/{run['id']}/messages", json={"text": "Also: MIDTURN-42"})
    assert resp.status_code == 202, resp.text
    done = await api.wait_status(run["id"], "review", "failed", timeout=WAIT)
    assert done["status"] == "review" and done["turns"] == 1, done
    calls = fake.model_calls("openai-responses")
    assert len(calls) == 2 and "MIDTURN-42" not in calls[0].text()
    # Codex let the command finish, then sent its output and the message in the next call.
    output, message = calls[1].body["input"][-2:]
    assert output["type"] == "function_call_output" and "slept" in output["output"]
    assert message["role"] == "user" and calls[1].text().count("MIDTURN-42") == 1
    assert json.dumps(message).count("MIDTURN-42") == 1
    completed = [e["data"] for e in await events(api, run["id"], "turn.completed")]
    assert [c["result"] for c in completed] == ["Noted the extra request."]
    assert await pending_messages(api, run["id"]) == []


async def test_message_during_a_model_call_restarts_it_in_the_same_turn(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    """Too late to ride along a tool result: Codex drops the model call still waiting for its
    first output and asks again with the message, in the same turn."""
    api = sqlite_api
    fake.script([Reply(text="Slow answer.", delay=5.0), Reply(text="Answered LATE-7.")])
    run = await create(api, git_repo, options(fake, tmp_path / "home"), "Answer slowly")
    await wait_model_calls(fake, 1)
    resp = await api.post(f"/api/runs/{run['id']}/messages", json={"text": "And LATE-7?"})
    assert resp.status_code == 202, resp.text
    done = await api.wait_status(run["id"], "review", "failed", timeout=WAIT)
    assert done["status"] == "review" and done["turns"] == 1, done
    calls = fake.model_calls("openai-responses")
    assert len(calls) == 2 and "And LATE-7?" not in calls[0].text()
    assert calls[1].text().count("And LATE-7?") == 1
    assert calls[1].body["input"][-1]["role"] == "user"
    by_type: dict[str, list[dict[str, Any]]] = {}
    for e in await events(api, run["id"]):
        by_type.setdefault(e["type"], []).append(e["data"])
    assert [m["text"] for m in by_type["agent.message"]] == ["Answered LATE-7."]
    assert [c["result"] for c in by_type["turn.completed"]] == ["Answered LATE-7."]
    assert len(by_type["usage"]) == 1  # the dropped call reported nothing
    assert await pending_messages(api, run["id"]) == []


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
