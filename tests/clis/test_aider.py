"""Aider (``aider-chat`` from ``clis/py/aider``, ``make aider``) end to end: the real aider, run
by Codeyard's ACP bridge, against the fake model server (OpenAI Chat Completions), through the
Codeyard API — the behaviours of the ACP contract suite (``test_agent_contract.py``).

Aider is not a case of that suite because it has no tool calls: its model writes edit blocks and
fenced shell blocks in plain text (the replies below), and is told what happened in user
messages, not tool results. Everything else is asserted as the suite does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from codeyard.agents.aider import AiderProvider
from codeyard.testing.fake_llm import FakeLLM, HttpError, Reply, Usage
from tests.clis import acp_support as acp
from tests.clis import support
from tests.conftest import Api

pytestmark = pytest.mark.anyio

MODEL = "openai/gpt-4.1"


@pytest.fixture(scope="module", autouse=True)
def _installed() -> None:
    acp.require(AiderProvider())


def options(fake: FakeLLM, home: Path, **extra: Any) -> dict[str, Any]:
    env = {"OPENAI_API_BASE": f"{fake.url}/v1", "OPENAI_API_KEY": "dummy", "HOME": str(home)}
    return {"env": env, **extra}


def shell(command: str, text: str = "") -> str:
    """A reply suggesting a shell command, as aider's prompts ask the model to write one."""
    return f"{text}\n\n```bash\n{command}\n```\n".lstrip()


def new_file(name: str, content: str) -> str:
    """A reply creating ``name`` with one SEARCH/REPLACE block (aider's ``diff`` format)."""
    return f"{name}\n```\n<<<<<<< SEARCH\n=======\n{content}\n>>>>>>> REPLACE\n```\n"


def sent(fake: FakeLLM, at: int) -> str:
    return fake.model_calls("openai-chat")[at].text()


async def test_edits_and_a_shell_call_then_a_message_resuming_the_session(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    api = sqlite_api
    command = "echo ran > ran.txt && echo ok"
    fake.script(
        [
            Reply(text=new_file("hello.txt", "hi") + shell(command, "Running it.")),
            Reply(text="All done ALPHA.", usage=Usage(300, 40)),
            Reply(text="Second answer."),
        ]
    )
    opts = options(fake, tmp_path / "home", permission_mode="auto")
    run = await acp.create(api, git_repo, "aider", MODEL, opts, "Mark the repo")
    done = await api.wait_status(run["id"], "review", "failed", timeout=acp.WAIT)
    assert done["status"] == "review", done
    tree = support.worktree(api, run)
    assert (tree / "ran.txt").read_text() == "ran\n"
    assert (tree / "hello.txt").read_text() == "hi\n"
    assert done["diff_stats"]["files"] == 2
    assert not list(tree.glob(".aider*")), "aider's history files stay out of the worktree"

    seen = await support.by_type(api, run["id"])
    (session,) = seen["agent.session"]
    assert session["provider"] == "aider" and session["cli_version"] == "0.86.2"
    assert done["session_id"] == session["session_id"]
    edit, bash = seen["tool.call"]
    assert (edit["tool"], edit["kind"]) == ("edit", "edit")
    assert edit["input"]["path"] == str(tree / "hello.txt")
    assert (bash["tool"], bash["kind"]) == ("execute", "bash")
    assert bash["input"]["command"] == command and bash["title"] == f"$ {command}"
    edited, ran = seen["tool.result"]
    assert edited["ok"] is True and edited["call_id"] == edit["call_id"]
    assert ran["ok"] is True and ran["call_id"] == bash["call_id"]
    assert "ok" in ran["output"] and ran["exit_code"] == 0
    assert [d["decision"] for d in seen["policy.decision"]] == ["allow", "allow"]
    assert seen["agent.message"][-1]["text"] == "All done ALPHA."
    assert "".join(d["text"] for d in seen["agent.delta"]).endswith("All done ALPHA.")
    (usage,) = seen["usage"]
    assert (usage["input_tokens"], usage["output_tokens"]) == (400, 52)
    assert usage["cost_source"] == "price_map" and usage["cost_usd"] > 0
    (completed,) = seen["turn.completed"]
    assert completed["stop_reason"] == "end_turn" and completed["result"] == "All done ALPHA."
    assert "Mark the repo" in sent(fake, 0)
    # The command's output went back to the model in the same turn.
    assert f"Output from {command} (exit code 0)" in sent(fake, 1) and "ok" in sent(fake, 1)

    resp = await api.post(f"/api/runs/{run['id']}/messages", json={"text": "Now say BRAVO"})
    assert resp.status_code == 202, resp.text
    await support.wait_model_calls(fake, 3)
    second = await api.wait_status(run["id"], "review", "failed", timeout=acp.WAIT)
    assert second["status"] == "review" and second["turns"] == 2, second
    assert second["session_id"] == done["session_id"]
    last = sent(fake, 2)
    assert "Mark the repo" in last and "All done ALPHA." in last and "Now say BRAVO" in last
    messages = [m["text"] for m in (await support.by_type(api, run["id"]))["agent.message"]]
    assert messages[-1] == "Second answer.", "the replayed history is not news"
    assert messages.count("All done ALPHA.") == 1


async def test_asked_calls_wait_for_approval_and_a_rejection_reaches_the_model(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    api = sqlite_api
    fake.script(
        [
            Reply(text=shell("echo yes > approved.txt")),
            Reply(text=shell("echo no > rejected.txt")),
            Reply(text="Done."),
        ]
    )
    set_id = await acp.policy_set(api, {"tool": "execute", "command": "^echo ", "action": "ask"})
    opts = options(fake, tmp_path / "home", permission_mode="auto")
    run = await acp.create(
        api, git_repo, "aider", MODEL, opts, "Ask first", policy_set_ids=[set_id]
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
    # The model was told, in the same turn, that the command did not run.
    assert "The operator rejected this shell command" in sent(fake, 2)
    assert "echo no > rejected.txt" in sent(fake, 2)


async def test_a_rejected_edit_leaves_the_file_alone_and_the_model_is_told(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    api = sqlite_api
    fake.script([Reply(text=new_file("nope.txt", "no")), Reply(text="Understood.")])
    set_id = await acp.policy_set(api, {"tool": "edit", "action": "deny"})
    opts = options(fake, tmp_path / "home")
    run = await acp.create(api, git_repo, "aider", MODEL, opts, "Write", policy_set_ids=[set_id])
    done = await api.wait_status(run["id"], "review", "failed", timeout=acp.WAIT)
    assert done["status"] == "review", done
    assert not (support.worktree(api, run) / "nope.txt").exists(), "not even created empty"
    (result,) = [e["data"] for e in await support.events(api, run["id"], "tool.result")]
    assert result["ok"] is False
    assert "The operator rejected this edit of nope.txt" in sent(fake, 1)


async def test_pause_interrupts_and_resume_continues_the_session(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    api = sqlite_api
    fake.script([Reply(text="too late", delay=600), Reply(text="Resumed and finished.")])
    run = await acp.create(
        api, git_repo, "aider", MODEL, options(fake, tmp_path / "home"), "Work slowly"
    )
    done = await acp.pause_and_resume(api, run, fake, calls=1)
    assert done["turns"] == 2
    last = sent(fake, -1)
    assert "Work slowly" in last and "Continue the task from where you left off" in last
    completed = [e["data"] for e in await support.events(api, run["id"], "turn.completed")]
    assert completed[-1]["result"] == "Resumed and finished."
    assert await support.events(api, run["id"], "error") == []


async def test_a_model_api_error_fails_the_run_with_its_message(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    api = sqlite_api
    # A client error: aider retries server errors with back-off for up to a minute.
    body = {"error": {"message": "Backend exploded XYZ", "type": "invalid_request_error"}}
    fake.script([Reply(http_error=HttpError(400, body))])
    run = await acp.create(api, git_repo, "aider", MODEL, options(fake, tmp_path / "home"), "Hi")
    failed = await api.wait_status(run["id"], "failed", "review", timeout=acp.WAIT)
    assert failed["status"] == "failed", failed
    assert "Aider failed the turn" in failed["status_reason"]
    assert "Backend exploded XYZ" in failed["status_reason"]
    assert support.processes_in(support.worktree(api, run)) == []


async def test_cancel_mid_command_leaves_no_process(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    api = sqlite_api
    fake.script([Reply(text=shell(acp.BLOCKING)), Reply(text="never reached")])
    opts = options(fake, tmp_path / "home", permission_mode="auto")
    run = await acp.create(api, git_repo, "aider", MODEL, opts, "Wait a while")
    await acp.cancel_leaves_no_process(api, run, fake)


async def test_a_run_without_a_model_fails_saying_so(
    sqlite_api: Api, git_repo: Path, tmp_path: Path
) -> None:
    run = await acp.create(sqlite_api, git_repo, "aider", None, {}, "Hi")
    failed = await sqlite_api.wait_status(run["id"], "failed", "review", timeout=acp.WAIT)
    assert "Aider needs a model" in failed["status_reason"]
