"""The real Gemini CLI (``gemini --acp``, pinned in clis/) against the fake model server, driven
through the Codeyard API: tool calls, asks, pause and resume, a model error, cancel.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codeyard.agents.acp import GeminiProvider
from codeyard.testing.fake_llm import FakeLLM, HttpError, Reply, ToolCall, Usage
from tests.clis import acp_support as acp
from tests.clis import support
from tests.conftest import Api

pytestmark = pytest.mark.anyio

MODEL = "gemini-2.5-pro"  # a fixed model: no router side calls
SHELL = "run_shell_command"


@pytest.fixture(autouse=True)
def _needs_gemini() -> None:
    acp.require(GeminiProvider())


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


def options(fake: FakeLLM, home: Path, **extra: Any) -> dict[str, Any]:
    settings = {
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "privacy": {"usageStatisticsEnabled": False},
        "telemetry": {"enabled": False},
        "general": {"maxAttempts": 1},  # a model error fails at once, without backoff
    }
    (home / ".gemini").mkdir(parents=True, exist_ok=True)
    (home / ".gemini" / "settings.json").write_text(json.dumps(settings))
    env = {"GEMINI_API_KEY": "dummy", "GOOGLE_GEMINI_BASE_URL": fake.url, "HOME": str(home)}
    return {"env": env, **extra}


def function_responses(fake: FakeLLM, call: int) -> list[dict[str, Any]]:
    """The ``functionResponse`` parts Gemini CLI sent in model call ``call``."""
    body = fake.model_calls("gemini")[call].body
    parts = [p for c in body["contents"] for p in c.get("parts", [])]
    return [p["functionResponse"] for p in parts if "functionResponse" in p]


async def test_tool_call_events_and_a_message_resuming_the_session(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    api = sqlite_api
    command = "echo ran > ran.txt && echo ok"
    fake.script(
        [
            Reply(
                thinking="Plan it.",
                text="Running it.",
                tool_calls=(ToolCall(SHELL, {"command": command, "description": "Mark"}),),
            ),
            Reply(text="All done ALPHA.", usage=Usage(300, 40)),
            Reply(text="Second answer."),
        ]
    )
    opts = options(fake, tmp_path / "home", permission_mode="auto")
    run = await acp.create(api, git_repo, "gemini", MODEL, opts, "Mark the repo")
    done = await api.wait_status(run["id"], "review", "failed", timeout=acp.WAIT)
    assert done["status"] == "review", done
    assert (support.worktree(api, run) / "ran.txt").read_text() == "ran\n"
    assert done["diff_stats"]["files"] == 1

    seen = await support.by_type(api, run["id"])
    (session,) = seen["agent.session"]
    assert session["provider"] == "gemini" and session["cli_version"] == "0.61.0"
    assert session["model"] == MODEL and done["session_id"] == session["session_id"]
    (call,) = seen["tool.call"]
    assert (call["tool"], call["kind"]) == ("execute", "bash")
    assert call["title"] == f"$ {command}" and call["input"]["command"] == command
    (result,) = seen["tool.result"]
    assert result["ok"] is True and result["call_id"] == call["call_id"]
    assert [d["decision"] for d in seen["policy.decision"]] == ["allow"]
    assert "Plan it." in seen["agent.thinking"][0]["text"]
    assert [m["text"] for m in seen["agent.message"]] == ["Running it.", "All done ALPHA."]
    assert "".join(d["text"] for d in seen["agent.delta"]) == "Running it.All done ALPHA."
    (usage,) = seen["usage"]
    assert (usage["input_tokens"], usage["output_tokens"]) == (400, 52)
    assert usage["cost_source"] == "price_map" and usage["cost_usd"] > 0  # priced by Codeyard
    (completed,) = seen["turn.completed"]
    assert completed["stop_reason"] == "end_turn" and completed["result"] == "All done ALPHA."
    assert "Mark the repo" in fake.model_calls("gemini")[0].text()

    # An operator message starts a second turn in the same Gemini session (session/load).
    resp = await api.post(f"/api/runs/{run['id']}/messages", json={"text": "Now say BRAVO"})
    assert resp.status_code == 202, resp.text
    await support.wait_model_calls(fake, 3)
    second = await api.wait_status(run["id"], "review", "failed", timeout=acp.WAIT)
    assert second["status"] == "review" and second["turns"] == 2, second
    assert second["session_id"] == done["session_id"]
    sent = fake.model_calls("gemini")[-1].text()
    assert "Mark the repo" in sent and "All done ALPHA." in sent and "Now say BRAVO" in sent
    messages = [m["text"] for m in (await support.by_type(api, run["id"]))["agent.message"]]
    assert messages[-1] == "Second answer.", "the replayed history is not news"
    assert messages.count("All done ALPHA.") == 1


async def test_asked_calls_wait_for_approval_and_a_rejection_reaches_the_model(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    api = sqlite_api
    fake.script(
        [
            Reply(tool_calls=(ToolCall(SHELL, {"command": "echo yes > approved.txt"}),)),
            Reply(tool_calls=(ToolCall(SHELL, {"command": "echo no > rejected.txt"}),)),
            Reply(text="Done."),
        ]
    )
    set_id = await acp.policy_set(api, {"tool": "execute", "command": "^echo ", "action": "ask"})
    opts = options(fake, tmp_path / "home", permission_mode="auto")
    run = await acp.create(
        api, git_repo, "gemini", MODEL, opts, "Ask first", policy_set_ids=[set_id]
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
    # The model was told the call did not run.
    told = function_responses(fake, 2)[-1]
    assert told["name"] == SHELL and "canceled by the user" in told["response"]["error"]


async def test_pause_interrupts_and_resume_continues_the_session(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    api = sqlite_api
    fake.script(
        [
            Reply(text="First answer ALPHA."),
            Reply(text="too late", delay=600),
            Reply(text="Resumed and finished."),
        ]
    )
    run = await acp.create(
        api, git_repo, "gemini", MODEL, options(fake, tmp_path / "home"), "Say alpha"
    )
    first = await api.wait_status(run["id"], "review", "failed", timeout=acp.WAIT)
    assert first["status"] == "review", first
    resp = await api.post(f"/api/runs/{run['id']}/messages", json={"text": "Work slowly"})
    assert resp.status_code == 202, resp.text
    # Gemini CLI drops an interrupted turn from its session; the resumed turn repeats it.
    done = await acp.pause_and_resume(api, run, fake, calls=2)
    assert done["session_id"] == first["session_id"] and done["turns"] == 3
    sent = fake.model_calls("gemini")[-1].text()
    assert "First answer ALPHA." in sent and "Continue the task from where you left off" in sent
    assert "Work slowly" in sent
    completed = [e["data"] for e in await support.events(api, run["id"], "turn.completed")]
    assert completed[-1]["result"] == "Resumed and finished."
    assert await support.events(api, run["id"], "error") == []


async def test_a_model_api_error_fails_the_run_with_its_message(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    api = sqlite_api
    body = {"error": {"code": 500, "message": "Backend exploded XYZ", "status": "INTERNAL"}}
    fake.script([Reply(http_error=HttpError(500, body))] * 3)
    run = await acp.create(api, git_repo, "gemini", MODEL, options(fake, tmp_path / "home"), "Hi")
    failed = await api.wait_status(run["id"], "failed", "review", timeout=acp.WAIT)
    assert failed["status"] == "failed", failed
    assert "Gemini CLI failed the turn" in failed["status_reason"]
    assert "Backend exploded XYZ" in failed["status_reason"]
    assert support.processes_in(support.worktree(api, run)) == []


async def test_cancel_mid_tool_leaves_no_process(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    api = sqlite_api
    fake.script(
        [
            Reply(tool_calls=(ToolCall(SHELL, {"command": acp.BLOCKING}),)),
            Reply(text="never reached"),
        ]
    )
    opts = options(fake, tmp_path / "home", permission_mode="auto")
    run = await acp.create(api, git_repo, "gemini", MODEL, opts, "Wait a while")
    await acp.cancel_leaves_no_process(api, run, fake)


async def test_providers_report_the_pinned_clis(sqlite_api: Api) -> None:
    rows = {p["name"]: p for p in (await sqlite_api.get("/api/providers")).json()["data"]}
    gemini = rows["gemini"]
    assert gemini["available"] is True and gemini["problem"] is None
    assert gemini["version"] == "0.61.0" and gemini["path"].endswith("/gemini")
    assert gemini["capabilities"]["approvals"] and gemini["capabilities"]["resume"]
    assert rows["acp"]["capabilities"]["resume"] is False
    assert {"copilot", "opencode"} <= set(rows)
