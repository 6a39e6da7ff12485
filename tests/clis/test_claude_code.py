"""The real Claude Code binary (bundled in claude-agent-sdk) against the fake model server,
driven through the Codeyard API: tool calls, a denial, resume, pause and cancel, usage and cost.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from codeyard.agents.claude import ClaudeCodeProvider
from codeyard.config import Settings
from codeyard.testing.fake_llm import FakeLLM, Reply, ToolCall, Usage
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

MODEL = "claude-sonnet-4-5"
#: Anthropic list prices of MODEL per token: input, output, cache read, cache write.
PRICES = (3e-6, 15e-6, 3e-7, 3.75e-6)
WAIT = 90.0
BLOCKING = "tail -f /dev/null"
_PROBLEM = ClaudeCodeProvider().problem()


@pytest.fixture(autouse=True)
def _needs_claude() -> None:
    if _PROBLEM is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"Claude Code must run in CI: {_PROBLEM}")
    pytest.skip(f"Claude Code cannot run here: {_PROBLEM}")


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


def options(fake: FakeLLM, home: Path, **extra: Any) -> dict[str, Any]:
    env = {
        "ANTHROPIC_BASE_URL": fake.url,
        "ANTHROPIC_API_KEY": "test",
        "HOME": str(home),  # sessions and settings stay in the test's directory
        "CLAUDE_CODE_MAX_RETRIES": "0",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    return {"env": env, **extra}


async def create(
    api: Api, repo: Path, opts: dict[str, Any], prompt: str, **extra: Any
) -> dict[str, Any]:
    body = {
        "prompt": prompt,
        "repo_path": str(repo),
        "provider": "claude-code",
        "model": MODEL,
        "agent_options": opts,
        **extra,
    }
    resp = await api.post("/api/runs", json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()


async def test_tool_calls_change_the_worktree_and_usage_is_priced(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    api = sqlite_api
    fake.script(
        [
            Reply(
                text="I will write the file.",
                tool_calls=(
                    ToolCall("Write", {"file_path": "{cwd}/hello.txt", "content": "hi\n"}),
                ),
            ),
            Reply(
                thinking="Now a command.",
                tool_calls=(
                    ToolCall(
                        "Bash", {"command": "echo ran > ran.txt && echo ok", "description": "Mark"}
                    ),
                ),
            ),
            Reply(text="All done.", usage=Usage(200, 30, 50, 10)),
        ]
    )
    opts = options(fake, tmp_path / "home", instructions="Sign every answer CODEYARD-MARKER-7.")
    run = await create(api, git_repo, opts, "Create hello.txt please")
    done = await api.wait_status(run["id"], "review", "failed", timeout=WAIT)
    assert done["status"] == "review", done

    tree = worktree(api, run)
    assert (tree / "hello.txt").read_text() == "hi\n"
    assert (tree / "ran.txt").read_text() == "ran\n"
    assert done["diff_stats"]["files"] == 2

    evs = await events(api, run["id"])
    by_type: dict[str, list[dict[str, Any]]] = {}
    for e in evs:
        by_type.setdefault(e["type"], []).append(e["data"])
    session = by_type["agent.session"][0]
    assert session["provider"] == "claude-code" and session["cli_version"]
    assert done["session_id"] == session["session_id"]
    calls = by_type["tool.call"]
    assert [(c["tool"], c["kind"]) for c in calls] == [("Write", "write"), ("Bash", "bash")]
    assert calls[1]["title"] == "$ echo ran > ran.txt && echo ok"
    results = by_type["tool.result"]
    assert [r["ok"] for r in results] == [True, True] and "ok" in results[1]["output"]
    assert [d["decision"] for d in by_type["policy.decision"]] == ["allow", "allow"]
    assert by_type["agent.thinking"][0]["text"] == "Now a command."
    assert by_type["agent.message"][-1]["text"] == "All done."
    # Text streamed as deltas under the id of the completed message, shown once.
    final = by_type["agent.message"][-1]
    streamed = [d for d in by_type["agent.delta"] if d["message_id"] == final["message_id"]]
    assert "".join(d["text"] for d in streamed) == "All done."
    transcript = (await api.get(f"/api/runs/{run['id']}/transcript")).json()
    said = [i for i in transcript["items"] if "All done." in json.dumps(i)]
    assert len(said) == 2, said  # the assistant message and the turn's result, not the deltas
    completed = by_type["turn.completed"][0]
    assert completed["stop_reason"] == "end_turn" and completed["result"] == "All done."
    assert {e["type"] for e in evs} >= {"file.changed", "usage"}

    # Usage is what the model server reported, priced by the CLI, recorded once per turn.
    model_calls = fake.model_calls("anthropic")
    assert len(model_calls) == 3
    side = [r for r in fake.requests if r.path == "/v1/messages" and not r.model_call]
    usage = done["usage"]
    tokens = [
        usage["input_tokens"] - 100 * len(side),
        usage["output_tokens"] - 12 * len(side),
        usage["cache_read_tokens"],
        usage["cache_write_tokens"],
    ]
    assert tokens == [400, 54, 50, 10]
    every_call_priced_as_model = all(r.model == MODEL for r in fake.requests if r.body)
    if every_call_priced_as_model:
        counted = [usage[k] for k in ("input_tokens", "output_tokens")] + tokens[2:]
        expected = sum(n * p for n, p in zip(counted, PRICES, strict=True))
        assert usage["cost_usd"] == pytest.approx(expected, rel=1e-3)
    assert usage["cost_usd"] > 0

    # What the CLI sent: the model asked for, our instructions in the system prompt.
    first = model_calls[0]
    assert first.model == MODEL and first.query == "beta=true"
    assert "CODEYARD-MARKER-7" in json.dumps(first.body["system"])
    assert "Create hello.txt please" in first.text()
    assert not [n for r in fake.requests for n in r.notes if "declared" in n]


async def test_denied_tool_is_explained_to_the_model(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    api = sqlite_api
    fake.script(
        [
            Reply(
                tool_calls=(ToolCall("Bash", {"command": "touch nope.txt", "description": "x"}),)
            ),
            Reply(text="I will not run it."),
        ]
    )
    opts = options(fake, tmp_path / "home", deny_tools=["Bash"])
    run = await create(api, git_repo, opts, "Touch a file")
    done = await api.wait_status(run["id"], "review", "failed", timeout=WAIT)
    assert done["status"] == "review", done
    assert not (worktree(api, run) / "nope.txt").exists()
    decisions = await events(api, run["id"], "policy.decision")
    assert [d["data"]["decision"] for d in decisions] == ["deny"]
    result = (await events(api, run["id"], "tool.result"))[0]["data"]
    assert result["ok"] is False and "Codeyard policy denied" in result["error"]
    # The model was told why, in words that steer it away from retrying.
    follow_up = fake.model_calls("anthropic")[1].text()
    assert "Codeyard policy denied this tool call" in follow_up and "Do not retry" in follow_up


async def test_message_in_review_resumes_the_same_session(
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
    sent = fake.model_calls("anthropic")[-1]
    assert "First answer ALPHA." in sent.text() and "Now say BRAVO" in sent.text()
    sessions = [e["data"]["session_id"] for e in await events(api, run["id"], "agent.session")]
    assert sessions == [first["session_id"]] * 2
    # The CLI's cost counter is cumulative across the resumed session: each turn counts once.
    usages = [e["data"] for e in await events(api, run["id"], "usage")]
    assert len(usages) == 2
    assert usages[1]["input_tokens"] == 100 and usages[1]["output_tokens"] == 12
    assert usages[1]["cost_usd"] == pytest.approx(100 * PRICES[0] + 12 * PRICES[1])
    assert second["usage"]["cost_usd"] == pytest.approx(sum(u["cost_usd"] for u in usages))


async def test_message_mid_turn_reaches_the_running_agent(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    """A message sent while a tool runs is folded into the same turn (no second turn)."""
    api = sqlite_api
    fake.script(
        [
            Reply(tool_calls=(ToolCall("Bash", {"command": "sleep 2 && echo slept"}),)),
            Reply(text="Noted the extra request."),
        ]
    )
    run = await create(api, git_repo, options(fake, tmp_path / "home"), "Take a nap")
    await wait_model_calls(fake, 1)
    await wait_for_process(worktree(api, run), "sleep 2")
    resp = await api.post(f"/api/runs/{run['id']}/messages", json={"text": "Also: MIDTURN-42"})
    assert resp.status_code == 202, resp.text
    done = await api.wait_status(run["id"], "review", "failed", timeout=WAIT)
    assert done["status"] == "review" and done["turns"] == 1, done
    calls = fake.model_calls("anthropic")
    assert len(calls) == 2 and "MIDTURN-42" in calls[1].text()
    assert len(await events(api, run["id"], "turn.completed")) == 1
    async with api.services.engine.connect() as conn:
        from codeyard.store import runs as run_store

        assert (await run_store.get(conn, run["id"]))["pending_messages"] == []


async def test_message_during_the_last_reply_is_answered_in_the_same_turn(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    """Too late to ride along a tool result: the CLI answers it next, still one Codeyard turn."""
    api = sqlite_api
    fake.script([Reply(text="Slow answer.", delay=3.0), Reply(text="Answered LATE-7.")])
    run = await create(api, git_repo, options(fake, tmp_path / "home"), "Answer slowly")
    await wait_model_calls(fake, 1)
    resp = await api.post(f"/api/runs/{run['id']}/messages", json={"text": "And LATE-7?"})
    assert resp.status_code == 202, resp.text
    done = await api.wait_status(run["id"], "review", "failed", timeout=WAIT)
    assert done["status"] == "review" and done["turns"] == 1, done
    calls = fake.model_calls("anthropic")
    assert len(calls) == 2 and "And LATE-7?" in calls[1].text()
    completed = [e["data"] for e in await events(api, run["id"], "turn.completed")]
    assert [c["result"] for c in completed] == ["Answered LATE-7."]
    assert len(await events(api, run["id"], "usage")) == 2


async def test_pause_interrupts_and_resume_continues_the_session(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    api = sqlite_api
    fake.script([Reply(text="too late", delay=600), Reply(text="Resumed and finished.")])
    run = await create(api, git_repo, options(fake, tmp_path / "home"), "Work slowly")
    await wait_model_calls(fake, 1)
    tree = worktree(api, run)
    assert processes_in(tree), "Claude Code should be running in the worktree"
    resp = await api.post(f"/api/runs/{run['id']}/pause")
    assert resp.status_code == 200, resp.text
    paused = await api.wait_status(run["id"], "paused", timeout=WAIT)
    assert paused["session_id"], "the session id is kept for resume"
    assert processes_in(tree) == []
    resp = await api.post(f"/api/runs/{run['id']}/resume", json={})
    assert resp.status_code == 200, resp.text
    done = await api.wait_status(run["id"], "review", "failed", timeout=WAIT)
    assert done["status"] == "review", done
    assert done["session_id"] == paused["session_id"]
    sent = fake.model_calls("anthropic")[-1].text()
    assert "Work slowly" in sent and "Continue the task from where you left off" in sent


async def test_cancel_mid_turn_leaves_no_process(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    api = sqlite_api
    fake.script(
        [
            # (Claude Code refuses a plain `sleep 300`; this blocks just as long.)
            Reply(tool_calls=(ToolCall("Bash", {"command": BLOCKING, "description": "Wait"}),)),
            Reply(text="never reached"),
        ]
    )
    run = await create(api, git_repo, options(fake, tmp_path / "home"), "Wait a while")
    await wait_model_calls(fake, 1)
    tree = worktree(api, run)
    await wait_for_process(tree, BLOCKING)
    resp = await api.post(f"/api/runs/{run['id']}/cancel")
    assert resp.status_code == 200, resp.text
    with anyio.fail_after(30):
        await api.wait_status(run["id"], "cancelled", timeout=30)
        await api.services.executor.wait_stopped(run["id"])
    assert processes_in(tree) == [], "no process of the cancelled turn may survive"


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
    sent = fake.model_calls("anthropic")[-1].text()
    assert "Survive a restart" in sent and "Continue the task from where you left off" in sent


async def test_asked_calls_wait_for_approval_and_a_rejection_reaches_the_model(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    api = sqlite_api
    fake.script(
        [
            Reply(tool_calls=(ToolCall("Bash", {"command": "touch free.txt"}),)),
            Reply(tool_calls=(ToolCall("Bash", {"command": "echo yes > approved.txt"}),)),
            Reply(tool_calls=(ToolCall("Bash", {"command": "echo no > rejected.txt"}),)),
            Reply(text="Done."),
        ]
    )
    # The mode lets everything through: only the policy's rule asks (a `touch` is not asked).
    pol = await api.post(
        "/api/policies",
        json={
            "name": "ask-marked",
            "rules": [{"tool": "Bash", "command": "approved|rejected", "action": "ask"}],
        },
    )
    assert pol.status_code == 201, pol.text
    pset = await api.post("/api/policy-sets", json={"name": "s", "policy_ids": [pol.json()["id"]]})
    opts = options(fake, tmp_path / "home", permission_mode="auto")
    run = await create(api, git_repo, opts, "Ask first", policy_set_ids=[pset.json()["id"]])
    first = (await approvals(api, run["id"]))[0]
    assert first["tool"] == "Bash" and first["kind"] == "bash"
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
    assert (tree / "free.txt").exists()
    decisions = [e["data"] for e in await events(api, run["id"], "policy.decision")]
    assert [d["decision"] for d in decisions] == ["allow", "ask", "ask"]
    assert decisions[1]["rule"].startswith("policy:") and decisions[0]["rule"] == "mode:auto"
    told = fake.model_calls("anthropic")[3].text()
    assert "Codeyard policy denied this tool call" in told and "not in this repository" in told


async def test_allowed_tools_and_max_turns_reach_the_cli(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    api = sqlite_api
    fake.script(
        [
            Reply(tool_calls=(ToolCall("Bash", {"command": "echo hi > allowed.txt"}),)),
            Reply(text="never asked for: the turn limit stops first"),
        ]
    )
    opts = options(
        fake, tmp_path / "home", allowed_tools=["Bash"], max_turns=1, permission_mode="default"
    )
    run = await create(api, git_repo, opts, "One step only")
    done = await api.wait_status(run["id"], "review", "failed", timeout=WAIT)
    assert done["status"] == "review" and done["status_reason"] == "max_turns", done
    assert (worktree(api, run) / "allowed.txt").read_text() == "hi\n"
    # An allowed tool runs without asking Codeyard: no decision, no approval.
    assert await events(api, run["id"], "policy.decision") == []
    assert len(fake.model_calls("anthropic")) == 1


async def test_a_lost_session_starts_a_new_one_and_says_so(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    api = sqlite_api
    fake.script([Reply(text="First."), Reply(text="Fresh start.")])
    home = tmp_path / "home"
    run = await create(api, git_repo, options(fake, home), "Remember me")
    first = await api.wait_status(run["id"], "review", "failed", timeout=WAIT)
    assert first["status"] == "review", first
    shutil.rmtree(home / ".claude" / "projects")  # Claude Code's session files are gone
    resp = await api.post(f"/api/runs/{run['id']}/messages", json={"text": "Still there?"})
    assert resp.status_code == 202, resp.text
    await wait_model_calls(fake, 2)
    second = await api.wait_status(run["id"], "review", "failed", timeout=WAIT)
    assert second["status"] == "review", second
    assert second["session_id"] and second["session_id"] != first["session_id"]
    errors = [e["data"] for e in await events(api, run["id"], "error")]
    assert errors and "new session" in errors[0]["message"]
    assert errors[0]["detail"] == first["session_id"]
