"""The ACP agents' contract, one suite for every ACP CLI (pinned in clis/): the real Gemini CLI,
Copilot CLI and OpenCode against the fake model server, driven through the Codeyard API — tool
calls, a message resuming the session, asks, pause and resume, a model error, cancel.

Each provider is an :class:`~tests.clis.acp_cases.AgentCase` (``acp_cases.py``); adding an ACP
provider is adding a case. Tests of one provider only stay in its module (``test_gemini.py``,
``test_copilot.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from codeyard.testing.fake_llm import FakeLLM, HttpError, Reply, Usage
from tests.clis import acp_support as acp
from tests.clis import support
from tests.clis.acp_cases import CASES, AgentCase
from tests.conftest import Api

pytestmark = pytest.mark.anyio


@pytest.fixture(params=CASES, ids=[c.name for c in CASES], scope="module")
def case(request: pytest.FixtureRequest) -> AgentCase:
    found: AgentCase = request.param
    acp.require(found.provider())
    return found


@pytest.fixture(scope="module")
def shared_home(case: AgentCase, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp(f"{case.name}-home")


@pytest.fixture
def home(case: AgentCase, shared_home: Path, tmp_path: Path) -> Path:
    return shared_home if case.shared_home else tmp_path / "home"


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    with FakeLLM() as server:
        yield server


async def test_tool_call_events_and_a_message_resuming_the_session(
    case: AgentCase, sqlite_api: Api, git_repo: Path, fake: FakeLLM, home: Path
) -> None:
    api = sqlite_api
    command = "echo ran > ran.txt && echo ok"
    fake.script(
        [
            Reply(thinking="Plan it.", text="Running it.", tool_calls=(case.call(command),)),
            Reply(text="All done ALPHA.", usage=Usage(300, 40)),
            Reply(text="Second answer."),
        ]
    )
    opts = case.options(fake, home, permission_mode="auto")
    run = await acp.create(api, git_repo, case.name, case.model, opts, "Mark the repo")
    done = await api.wait_status(run["id"], "review", "failed", timeout=acp.WAIT)
    assert done["status"] == "review", done
    assert (support.worktree(api, run) / "ran.txt").read_text() == "ran\n"
    assert done["diff_stats"]["files"] == 1

    seen = await support.by_type(api, run["id"])
    (session,) = seen["agent.session"]
    assert session["provider"] == case.name and session["cli_version"] == case.cli_version
    assert session["model"] == case.model and done["session_id"] == session["session_id"]
    (tool,) = seen["tool.call"]
    assert (tool["tool"], tool["kind"]) == ("execute", "bash")
    assert tool["input"]["command"] == command and tool["title"] == f"$ {command}"
    (result,) = seen["tool.result"]
    assert result["ok"] is True and result["call_id"] == tool["call_id"]
    if case.reports_exit_code:
        assert "ok" in result["output"] and result["exit_code"] == 0
    assert [d["decision"] for d in seen["policy.decision"]] == ["allow"]
    assert seen["agent.message"][-1]["text"] == "All done ALPHA."
    if case.streams_thinking:
        assert "Plan it." in seen["agent.thinking"][0]["text"]
        assert [m["text"] for m in seen["agent.message"]] == ["Running it.", "All done ALPHA."]
        assert "".join(d["text"] for d in seen["agent.delta"]) == "Running it.All done ALPHA."
    assert case.provider().capabilities.usage is case.reports_usage
    if not case.reports_usage:
        assert "usage" not in seen, "no counts made up: the capability says there are none"
    elif case.usage_of_last_call_only:
        (usage,) = seen["usage"]
        assert (usage["input_tokens"], usage["output_tokens"]) == (300, 40)
    else:
        (usage,) = seen["usage"]
        assert (usage["input_tokens"], usage["output_tokens"]) == (400, 52)
        assert usage["cost_source"] == "price_map" and usage["cost_usd"] > 0  # priced by Codeyard
    (completed,) = seen["turn.completed"]
    assert completed["stop_reason"] == "end_turn" and completed["result"] == "All done ALPHA."
    assert "Mark the repo" in fake.model_calls(case.api)[0].text()
    if case.turn_config_file:
        # The configuration Codeyard wrote for the turn is gone, and never was in the worktree.
        assert not (support.worktree(api, run) / case.turn_config_file).exists()

    # An operator message starts a second turn in the same session (session/load).
    resp = await api.post(f"/api/runs/{run['id']}/messages", json={"text": "Now say BRAVO"})
    assert resp.status_code == 202, resp.text
    await support.wait_model_calls(fake, 3)
    second = await api.wait_status(run["id"], "review", "failed", timeout=acp.WAIT)
    assert second["status"] == "review" and second["turns"] == 2, second
    assert second["session_id"] == done["session_id"]
    sent = fake.model_calls(case.api)[-1].text()
    assert "Mark the repo" in sent and "Now say BRAVO" in sent
    if case.session_keeps_replies:
        assert "All done ALPHA." in sent
    messages = [m["text"] for m in (await support.by_type(api, run["id"]))["agent.message"]]
    assert messages[-1] == "Second answer.", "the replayed history is not news"
    assert messages.count("All done ALPHA.") == 1


async def test_asked_calls_wait_for_approval_and_a_rejection_reaches_the_model(
    case: AgentCase, sqlite_api: Api, git_repo: Path, fake: FakeLLM, home: Path
) -> None:
    api = sqlite_api
    fake.script(
        [
            Reply(tool_calls=(case.call("echo yes > approved.txt"),)),
            Reply(tool_calls=(case.call("echo no > rejected.txt"),)),
            Reply(text="Done."),
        ]
    )
    set_id = await acp.policy_set(api, {"tool": "execute", "command": "^echo ", "action": "ask"})
    opts = case.options(fake, home, permission_mode="auto")
    run = await acp.create(
        api, git_repo, case.name, case.model, opts, "Ask first", policy_set_ids=[set_id]
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
    if case.rejection_ends_turn:
        # The turn ended at the rejection; the next model call (a message) carries it.
        resp = await api.post(f"/api/runs/{run['id']}/messages", json={"text": "Go on"})
        assert resp.status_code == 202, resp.text
        await support.wait_model_calls(fake, 3)
    # The model was told the call did not run.
    assert case.rejection_phrase in case.rejection_told(fake)
    await api.wait_status(run["id"], "review", "failed", timeout=acp.WAIT)


async def test_pause_interrupts_and_resume_continues_the_session(
    case: AgentCase, sqlite_api: Api, git_repo: Path, fake: FakeLLM, home: Path
) -> None:
    api = sqlite_api
    if case.drops_interrupted_turn:
        # A first turn to keep: the interrupted second one is dropped from the session and
        # repeated by the resumed turn, after the first turn's answer.
        fake.script(
            [
                Reply(text="First answer ALPHA."),
                Reply(text="too late", delay=600),
                Reply(text="Resumed and finished."),
            ]
        )
        opts = case.options(fake, home)
        run = await acp.create(api, git_repo, case.name, case.model, opts, "Say alpha")
        first = await api.wait_status(run["id"], "review", "failed", timeout=acp.WAIT)
        assert first["status"] == "review", first
        resp = await api.post(f"/api/runs/{run['id']}/messages", json={"text": "Work slowly"})
        assert resp.status_code == 202, resp.text
        done = await acp.pause_and_resume(api, run, fake, calls=2)
        assert done["session_id"] == first["session_id"] and done["turns"] == 3
        sent = fake.model_calls(case.api)[-1].text()
        assert "Say alpha" in sent
        if case.session_keeps_replies:
            assert "First answer ALPHA." in sent
    else:
        fake.script([Reply(text="too late", delay=600), Reply(text="Resumed and finished.")])
        opts = case.options(fake, home)
        run = await acp.create(api, git_repo, case.name, case.model, opts, "Work slowly")
        done = await acp.pause_and_resume(api, run, fake, calls=1)
        assert done["turns"] == 2
    sent = fake.model_calls(case.api)[-1].text()
    assert "Work slowly" in sent and "Continue the task from where you left off" in sent
    completed = [e["data"] for e in await support.events(api, run["id"], "turn.completed")]
    assert completed[-1]["result"] == "Resumed and finished."
    assert await support.events(api, run["id"], "error") == []


async def test_a_model_api_error_fails_the_run_with_its_message(
    case: AgentCase, sqlite_api: Api, git_repo: Path, fake: FakeLLM, home: Path
) -> None:
    api = sqlite_api
    error = HttpError(case.error_status, case.error_body, case.error_headers)
    fake.script([Reply(http_error=error)] * case.error_replies)
    run = await acp.create(api, git_repo, case.name, case.model, case.options(fake, home), "Hi")
    failed = await api.wait_status(run["id"], "failed", "review", timeout=acp.WAIT)
    assert failed["status"] == "failed", failed
    assert f"{case.label} failed the turn" in failed["status_reason"]
    assert "Backend exploded XYZ" in failed["status_reason"]
    assert support.processes_in(support.worktree(api, run)) == []


async def test_cancel_mid_tool_leaves_no_process(
    case: AgentCase, sqlite_api: Api, git_repo: Path, fake: FakeLLM, home: Path
) -> None:
    api = sqlite_api
    fake.script([Reply(tool_calls=(case.call(acp.BLOCKING),)), Reply(text="never reached")])
    opts = case.options(fake, home, permission_mode="auto")
    run = await acp.create(api, git_repo, case.name, case.model, opts, "Wait a while")
    await acp.cancel_leaves_no_process(api, run, fake)
