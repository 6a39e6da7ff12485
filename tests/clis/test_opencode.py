"""The real OpenCode (``opencode acp``, pinned in clis/) against the fake model server, driven
through the Codeyard API: tool calls, asks, pause and resume, a model error, cancel.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codeyard.agents.acp import OpenCodeProvider
from codeyard.testing.fake_llm import FakeLLM, HttpError, Reply, ToolCall, Usage
from tests.clis import acp_support as acp
from tests.clis import support
from tests.conftest import Api

pytestmark = pytest.mark.anyio

MODEL = "fake/fake-model"
SHELL = "bash"


@pytest.fixture(autouse=True)
def _needs_opencode() -> None:
    acp.require(OpenCodeProvider())


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One HOME for the module: OpenCode's first start in a fresh one (its database) is slow."""
    return tmp_path_factory.mktemp("opencode-home")


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


def options(fake: FakeLLM, home: Path, **extra: Any) -> dict[str, Any]:
    config = {
        "provider": {
            "fake": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "Fake local",
                "options": {"baseURL": f"{fake.url}/v1", "apiKey": "dummy"},
                "models": {"fake-model": {"name": "Fake model"}},
            }
        },
        "autoupdate": False,
        "share": "disabled",
    }
    env = {"HOME": str(home)}
    # Offline and lean: no models.dev fetch, plugin installs, LSP downloads, update checks,
    # nor skills looked for in other tools' folders.
    for flag in (
        "MODELS_FETCH",
        "DEFAULT_PLUGINS",
        "LSP_DOWNLOAD",
        "AUTOUPDATE",
        "SHARE",
        "CLAUDE_CODE",
        "EXTERNAL_SKILLS",
    ):
        env[f"OPENCODE_DISABLE_{flag}"] = "1"
    for name, sub in (
        ("XDG_CONFIG_HOME", ".config"),
        ("XDG_DATA_HOME", ".local/share"),
        ("XDG_CACHE_HOME", ".cache"),
        ("XDG_STATE_HOME", ".local/state"),
    ):
        env[name] = str(home / sub)
    return {"env": env, "config": config, **extra}


def call(command: str) -> ToolCall:
    return ToolCall(SHELL, {"command": command, "description": "Run it"})


def tool_messages(fake: FakeLLM, index: int) -> list[str]:
    """What OpenCode told the model about tool results in model call ``index``."""
    body = fake.model_calls("openai-chat")[index].body
    return [str(m.get("content")) for m in body["messages"] if m.get("role") == "tool"]


async def test_tool_call_events_and_a_message_resuming_the_session(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, home: Path
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
    opts = options(fake, home, permission_mode="auto")
    run = await acp.create(api, git_repo, "opencode", MODEL, opts, "Mark the repo")
    done = await api.wait_status(run["id"], "review", "failed", timeout=acp.WAIT)
    assert done["status"] == "review", done
    assert (support.worktree(api, run) / "ran.txt").read_text() == "ran\n"
    assert done["diff_stats"]["files"] == 1

    seen = await support.by_type(api, run["id"])
    (session,) = seen["agent.session"]
    assert session["provider"] == "opencode" and session["cli_version"] == "1.18.33"
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
    # OpenCode's ACP usage counts only the turn's last model call (research §7.3).
    assert (usage["input_tokens"], usage["output_tokens"]) == (300, 40)
    (completed,) = seen["turn.completed"]
    assert completed["stop_reason"] == "end_turn" and completed["result"] == "All done ALPHA."
    assert "Mark the repo" in fake.model_calls("openai-chat")[0].text()
    # The configuration Codeyard wrote for the turn is gone, and never was in the worktree.
    assert not (support.worktree(api, run) / "opencode.json").exists()

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
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, home: Path
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
    opts = options(fake, home, permission_mode="auto")
    run = await acp.create(
        api, git_repo, "opencode", MODEL, opts, "Ask first", policy_set_ids=[set_id]
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
    # OpenCode ends the turn at a rejection; the model learns of it with the next message.
    resp = await api.post(f"/api/runs/{run['id']}/messages", json={"text": "Go on"})
    assert resp.status_code == 202, resp.text
    await support.wait_model_calls(fake, 3)
    assert "rejected permission" in tool_messages(fake, 2)[-1]
    await api.wait_status(run["id"], "review", "failed", timeout=acp.WAIT)


async def test_pause_interrupts_and_resume_continues_the_session(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, home: Path
) -> None:
    api = sqlite_api
    fake.script([Reply(text="too late", delay=600), Reply(text="Resumed and finished.")])
    run = await acp.create(api, git_repo, "opencode", MODEL, options(fake, home), "Work slowly")
    done = await acp.pause_and_resume(api, run, fake, calls=1)
    sent = fake.model_calls("openai-chat")[-1].text()
    assert "Work slowly" in sent and "Continue the task from where you left off" in sent
    completed = [e["data"] for e in await support.events(api, run["id"], "turn.completed")]
    assert completed[-1]["result"] == "Resumed and finished."
    assert done["turns"] == 2 and await support.events(api, run["id"], "error") == []


async def test_a_model_api_error_fails_the_run_with_its_message(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, home: Path
) -> None:
    api = sqlite_api
    body = {"error": {"message": "Backend exploded XYZ", "type": "server_error", "code": 500}}
    now = {"retry-after-ms": "0"}  # OpenCode retries server errors: at once, not with backoff
    fake.script([Reply(http_error=HttpError(500, body, now))] * 12)
    run = await acp.create(api, git_repo, "opencode", MODEL, options(fake, home), "Hi")
    failed = await api.wait_status(run["id"], "failed", "review", timeout=acp.WAIT)
    assert failed["status"] == "failed", failed
    assert "OpenCode failed the turn" in failed["status_reason"]
    assert "Backend exploded XYZ" in failed["status_reason"]
    assert support.processes_in(support.worktree(api, run)) == []


async def test_cancel_mid_tool_leaves_no_process(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, home: Path
) -> None:
    api = sqlite_api
    fake.script([Reply(tool_calls=(call(acp.BLOCKING),)), Reply(text="never reached")])
    opts = options(fake, home, permission_mode="auto")
    run = await acp.create(api, git_repo, "opencode", MODEL, opts, "Wait a while")
    await acp.cancel_leaves_no_process(api, run, fake)
