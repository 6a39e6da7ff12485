"""The real Copilot CLI (``copilot --acp``, pinned in clis/) against the fake model server, driven
through the Codeyard API: tool calls, asks, pause and resume, a model error, cancel.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codeyard.agents.acp import CopilotProvider
from codeyard.testing.fake_llm import FakeLLM, HttpError, Reply, ToolCall, Usage
from tests.clis import acp_support as acp
from tests.clis import support
from tests.conftest import Api

pytestmark = pytest.mark.anyio

MODEL = "gpt-4.1"
SHELL = "bash"


@pytest.fixture(autouse=True)
def _needs_copilot() -> None:
    acp.require(CopilotProvider())


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


def options(fake: FakeLLM, home: Path, **extra: Any) -> dict[str, Any]:
    env = {
        "COPILOT_PROVIDER_BASE_URL": f"{fake.url}/v1",
        "COPILOT_PROVIDER_API_KEY": "dummy",
        "COPILOT_OFFLINE": "true",  # no GitHub login, telemetry or update checks
        "COPILOT_HOME": str(home / ".copilot"),
        "HOME": str(home),
    }
    return {"env": env, **extra}


def call(command: str) -> ToolCall:
    return ToolCall(SHELL, {"command": command, "description": "Run it"})


def tool_messages(fake: FakeLLM, index: int) -> list[str]:
    """What Copilot CLI told the model about tool results in model call ``index``."""
    body = fake.model_calls("openai-chat")[index].body
    return [str(m.get("content")) for m in body["messages"] if m.get("role") == "tool"]


async def test_tool_call_events_and_a_message_resuming_the_session(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    api = sqlite_api
    command = "echo ran > ran.txt && echo ok"
    fake.script(
        [
            Reply(thinking="Plan it.", text="Running it.", tool_calls=(call(command),)),
            Reply(text="All done ALPHA.", usage=Usage(300, 40)),
            Reply(text="Second answer."),
        ]
    )
    opts = options(fake, tmp_path / "home", permission_mode="auto")
    run = await acp.create(api, git_repo, "copilot", MODEL, opts, "Mark the repo")
    done = await api.wait_status(run["id"], "review", "failed", timeout=acp.WAIT)
    assert done["status"] == "review", done
    assert (support.worktree(api, run) / "ran.txt").read_text() == "ran\n"
    assert done["diff_stats"]["files"] == 1

    seen = await support.by_type(api, run["id"])
    (session,) = seen["agent.session"]
    assert session["provider"] == "copilot" and session["cli_version"] == "1.0.102"
    assert session["model"] == MODEL and done["session_id"] == session["session_id"]
    (tool,) = seen["tool.call"]
    assert (tool["tool"], tool["kind"]) == ("execute", "bash")
    assert tool["input"]["command"] == command and tool["title"] == f"$ {command}"
    (result,) = seen["tool.result"]
    assert result["ok"] is True and result["call_id"] == tool["call_id"]
    assert "ok" in result["output"] and result["exit_code"] == 0
    assert [d["decision"] for d in seen["policy.decision"]] == ["allow"]
    assert seen["agent.message"][-1]["text"] == "All done ALPHA."
    (usage,) = seen["usage"]
    assert (usage["input_tokens"], usage["output_tokens"]) == (400, 52)
    assert usage["cost_source"] == "price_map" and usage["cost_usd"] > 0  # priced by Codeyard
    (completed,) = seen["turn.completed"]
    assert completed["stop_reason"] == "end_turn" and completed["result"] == "All done ALPHA."
    assert "Mark the repo" in fake.model_calls("openai-chat")[0].text()

    resp = await api.post(f"/api/runs/{run['id']}/messages", json={"text": "Now say BRAVO"})
    assert resp.status_code == 202, resp.text
    await support.wait_model_calls(fake, 3)
    second = await api.wait_status(run["id"], "review", "failed", timeout=acp.WAIT)
    assert second["status"] == "review" and second["turns"] == 2, second
    assert second["session_id"] == done["session_id"]
    sent = fake.model_calls("openai-chat")[-1].text()
    assert "Mark the repo" in sent and "All done ALPHA." in sent and "Now say BRAVO" in sent
    messages = [m["text"] for m in (await support.by_type(api, run["id"]))["agent.message"]]
    assert messages[-1] == "Second answer." and messages.count("All done ALPHA.") == 1


async def test_asked_calls_wait_for_approval_and_a_rejection_reaches_the_model(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    api = sqlite_api
    fake.script(
        [
            Reply(tool_calls=(call("echo yes > approved.txt"),)),
            Reply(tool_calls=(call("echo no > rejected.txt"),)),
            Reply(text="Done."),
        ]
    )
    set_id = await acp.policy_set(api, {"tool": "execute", "command": "^echo ", "action": "ask"})
    opts = options(fake, tmp_path / "home", permission_mode="auto")
    run = await acp.create(
        api, git_repo, "copilot", MODEL, opts, "Ask first", policy_set_ids=[set_id]
    )
    seen: set[str] = set()
    first = await acp.pending_approval(api, run["id"], seen)
    assert first["tool"] == "execute" and first["kind"] == "bash"
    assert first["rule"].startswith("policy:"), "the policy asked, not the mode"
    assert (await api.get(f"/api/runs/{run['id']}")).json()["status"] == "waiting"
    await acp.resolve(api, first, "approved")
    second = await acp.pending_approval(api, run["id"], seen)
    await acp.resolve(api, second, "rejected", "not in this repository")
    done = await api.wait_status(run["id"], "review", "failed", timeout=acp.WAIT)
    assert done["status"] == "review", done
    tree = support.worktree(api, run)
    assert (tree / "approved.txt").read_text() == "yes\n"
    assert not (tree / "rejected.txt").exists()
    results = [e["data"] for e in await support.events(api, run["id"], "tool.result")]
    assert [r["ok"] for r in results] == [True, False]
    assert "not in this repository" in results[1]["error"]
    # The model learns of the rejection (in the tool result the next model call carries).
    resp = await api.post(f"/api/runs/{run['id']}/messages", json={"text": "Go on"})
    assert resp.status_code == 202, resp.text
    await support.wait_model_calls(fake, 3)
    assert "rejected this tool call" in tool_messages(fake, 2)[-1]
    await api.wait_status(run["id"], "review", "failed", timeout=acp.WAIT)


async def test_pause_interrupts_and_resume_continues_the_session(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    api = sqlite_api
    fake.script([Reply(text="too late", delay=600), Reply(text="Resumed and finished.")])
    run = await acp.create(
        api, git_repo, "copilot", MODEL, options(fake, tmp_path / "home"), "Work slowly"
    )
    done = await acp.pause_and_resume(api, run, fake, calls=1)
    sent = fake.model_calls("openai-chat")[-1].text()
    assert "Work slowly" in sent and "Continue the task from where you left off" in sent
    completed = [e["data"] for e in await support.events(api, run["id"], "turn.completed")]
    assert completed[-1]["result"] == "Resumed and finished."
    assert done["turns"] == 2 and await support.events(api, run["id"], "error") == []


async def test_a_model_api_error_fails_the_run_with_its_message(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    api = sqlite_api
    body = {"error": {"message": "Backend exploded XYZ", "type": "server_error", "code": 500}}
    now = {"retry-after-ms": "0", "retry-after": "0"}  # retries, if any, at once
    fake.script([Reply(http_error=HttpError(500, body, now))] * 12)
    run = await acp.create(api, git_repo, "copilot", MODEL, options(fake, tmp_path / "home"), "Hi")
    failed = await api.wait_status(run["id"], "failed", "review", timeout=acp.WAIT)
    assert failed["status"] == "failed", failed
    assert "Copilot CLI failed the turn" in failed["status_reason"]
    assert "Backend exploded XYZ" in failed["status_reason"]
    assert support.processes_in(support.worktree(api, run)) == []


async def test_cancel_mid_tool_leaves_no_process(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    api = sqlite_api
    fake.script([Reply(tool_calls=(call(acp.BLOCKING),)), Reply(text="never reached")])
    opts = options(fake, tmp_path / "home", permission_mode="auto")
    run = await acp.create(api, git_repo, "copilot", MODEL, opts, "Wait a while")
    await acp.cancel_leaves_no_process(api, run, fake)


async def test_any_acp_command_runs_as_the_acp_provider(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    api = sqlite_api
    fake.script([Reply(tool_calls=(call("echo hi > hi.txt"),)), Reply(text="Done.")])
    command = [CopilotProvider().path() or "copilot", "--acp", "--model", MODEL]
    opts = options(fake, tmp_path / "home", command=command, permission_mode="auto")
    run = await acp.create(api, git_repo, "acp", None, opts, "Say hi")
    done = await api.wait_status(run["id"], "review", "failed", timeout=acp.WAIT)
    assert done["status"] == "review", done
    assert (support.worktree(api, run) / "hi.txt").read_text() == "hi\n"
    (session,) = [e["data"] for e in await support.events(api, run["id"], "agent.session")]
    assert session["provider"] == "acp" and session["cli_version"] == "1.0.102"
    assert [e["data"]["ok"] for e in await support.events(api, run["id"], "tool.result")] == [True]
    body = {"prompt": "x", "repo_path": str(git_repo), "provider": "acp", "agent_options": {}}
    resp = await api.post("/api/runs", json=body)
    assert resp.status_code == 422 and "command is required" in resp.text
