"""The agents' contract, one suite for every real agent CLI (pinned in clis/ or bundled by their
SDKs): Claude Code, Codex and the ACP agents against the fake model server, driven through the
Codeyard API — tool calls, a message resuming the session, asks, pause and resume, a model error,
cancel; for the agents that take a message into a running turn, messages mid-turn and during a
model call; a server restart and a lost session for the two providers that had those scenarios.

Each provider is an :class:`~tests.clis.agent_cases.AgentCase` (``agent_cases.py`` for Claude Code
and Codex, ``acp_cases.py`` for the ACP agents); adding a provider is adding a case. Tests of one
provider only stay in its module (``test_claude_code.py``, ``test_codex.py``, ``test_gemini.py``,
``test_copilot.py``).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import pytest

from codeyard.config import Settings
from codeyard.pricing import prices
from codeyard.store import runs as run_store
from codeyard.testing.fake_llm import FakeLLM, HttpError, Reply, Usage
from codeyard.workspace.git import git
from tests.clis import acp_cases, support
from tests.clis import acp_support as acp
from tests.clis.agent_cases import CLAUDE_CODE, CODEX, NATIVE_CASES, AgentCase
from tests.conftest import Api, running_api

pytestmark = pytest.mark.anyio

CASES = [*NATIVE_CASES, *acp_cases.CASES]
#: The agents that take a message into the running turn (their capabilities say so).
MID_TURN = [c for c in CASES if c.mid_turn_input]
#: A server restart and a lost session are scenarios of Claude Code and Codex only so far: each
#: would add a full start of every ACP CLI (seconds each), so those cases are not in them yet.
RESTARTED = [CLAUDE_CODE, CODEX]
LOST_SESSION = [c for c in CASES if c.session_files]


def _cases(cases: list[AgentCase]) -> pytest.MarkDecorator:
    """Run a test for ``cases`` only (through the module's ``case`` fixture)."""
    return pytest.mark.parametrize(
        "case", cases, ids=[c.name for c in cases], indirect=True, scope="module"
    )


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


def _sum_usage(usages: list[dict[str, Any]]) -> tuple[int, int]:
    return sum(u["input_tokens"] for u in usages), sum(u["output_tokens"] for u in usages)


async def _pending_messages(api: Api, run_id: str) -> list[Any]:
    async with api.services.engine.connect() as conn:
        return list((await run_store.get(conn, run_id))["pending_messages"])


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
    # The run's task ends only once the CLI is gone (its turn's end may be recorded while it
    # exits, ``TurnEnd.exiting``), and its turn-end checkpoint holds what the last tool call
    # wrote.
    await api.services.executor.wait_stopped(run["id"])
    assert support.processes_in(support.worktree(api, run)) == []
    (point,) = (await api.get(f"/api/runs/{run['id']}/checkpoints")).json()["data"]
    (commit,) = point["commits"].values()
    assert (await git("show", f"{commit}:ran.txt", cwd=git_repo)).stdout == "ran"

    seen = await support.by_type(api, run["id"])
    (session,) = seen["agent.session"]
    assert session["provider"] == case.name and session["cli_version"] == case.cli_version
    assert session["model"] == case.model and done["session_id"] == session["session_id"]
    (tool,) = seen["tool.call"]
    assert (tool["tool"], tool["kind"]) == (case.tool, "bash")
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
    usages = seen.get("usage", [])
    if not case.reports_usage:
        assert usages == [], "no counts made up: the capability says there are none"
    else:
        # The counts the model server reported, in one event per turn, one per model call or
        # streamed as increments (as the CLI reports them); the CLI's own side calls, where it
        # counts them, on top.
        if case.usage_counted != "streamed":
            assert len(usages) == (2 if case.usage_counted == "model_call" else 1), usages
        side = len(case.side_calls(fake)) if case.side_calls else 0
        spent = (300, 40) if case.usage_of_last_call_only else (400, 52)
        assert _sum_usage(usages) == (spent[0] + 100 * side, spent[1] + 12 * side), usages
        if not case.usage_of_last_call_only:
            assert done["usage"]["cost_usd"] > 0
            sources = {u["cost_source"] for u in usages}
            if case.usage_counted == "streamed":  # estimates first, then the CLI's own total
                assert sources <= {"estimate", case.cost_source}, sources
            else:
                assert sources == {case.cost_source}, sources
    (completed,) = seen["turn.completed"]
    assert completed["stop_reason"] == "end_turn" and completed["result"] == "All done ALPHA."
    assert "Mark the repo" in fake.model_calls(case.api)[0].text()
    if case.turn_config_file:
        # The configuration Codeyard wrote for the turn is gone, and never was in the worktree.
        assert not (support.worktree(api, run) / case.turn_config_file).exists()

    # An operator message starts a second turn in the same session (resumed, not replayed).
    resp = await api.post(f"/api/runs/{run['id']}/messages", json={"text": "Now say BRAVO"})
    assert resp.status_code == 202, resp.text
    await support.wait_model_calls(fake, 3)
    second = await api.wait_status(run["id"], "review", "failed", timeout=acp.WAIT)
    assert second["status"] == "review" and second["turns"] == 2, second
    assert second["session_id"] == done["session_id"]
    sent = fake.model_calls(case.api)[-1]
    assert "Mark the repo" in sent.text() and "Now say BRAVO" in sent.text()
    if case.session_keeps_replies:
        assert "All done ALPHA." in sent.text()
    if case is CODEX:
        assert sent.headers.get("thread-id") == done["session_id"]
    later = await support.by_type(api, run["id"])
    assert [s["session_id"] for s in later["agent.session"]] == [done["session_id"]] * 2
    messages = [m["text"] for m in later["agent.message"]]
    assert messages[-1] == "Second answer.", "the replayed history is not news"
    assert messages.count("All done ALPHA.") == 1
    if case.reports_usage:
        # The resumed session's history is not counted again (nor a CLI's running total).
        turn_two = later["usage"][len(usages) :]
        assert _sum_usage(turn_two) == (100, 12), turn_two
        price = prices.cost_usd(case.model, {"input_tokens": 100, "output_tokens": 12})
        if price is not None:  # priced once: by the CLI or by Codeyard, at list price
            assert sum(u["cost_usd"] for u in turn_two) == pytest.approx(price, rel=1e-3)
            total = sum(u["cost_usd"] for u in later["usage"])
            assert second["usage"]["cost_usd"] == pytest.approx(total)


async def test_asked_calls_wait_for_approval_and_a_rejection_reaches_the_model(
    case: AgentCase, sqlite_api: Api, git_repo: Path, fake: FakeLLM, home: Path
) -> None:
    api = sqlite_api
    fake.script(
        [
            Reply(tool_calls=(case.call("touch free.txt"),)),
            Reply(tool_calls=(case.call("echo yes > approved.txt"),)),
            Reply(tool_calls=(case.call("echo no > rejected.txt"),)),
            Reply(text="Done."),
        ]
    )
    # The mode lets everything through: only the policy's rule asks (a `touch` is not asked).
    set_id = await acp.policy_set(api, {"tool": case.tool, "command": "^echo ", "action": "ask"})
    opts = case.options(fake, home, permission_mode="auto")
    run = await acp.create(
        api, git_repo, case.name, case.model, opts, "Ask first", policy_set_ids=[set_id]
    )
    seen: set[str] = set()
    first = await acp.pending_approval(api, run["id"], seen)
    assert first["tool"] == case.tool and first["kind"] == "bash"
    assert first["rule"].startswith("policy:"), "the policy asked, not the mode"
    assert (await api.get(f"/api/runs/{run['id']}")).json()["status"] == "waiting"
    await acp.resolve(api, first, "approved")
    second = await acp.pending_approval(api, run["id"], seen)
    await acp.resolve(api, second, "rejected", "not in this repository")
    done = await api.wait_status(run["id"], "review", "failed", timeout=acp.WAIT)
    assert done["status"] == "review", done
    tree = support.worktree(api, run)
    assert (tree / "free.txt").exists()
    assert (tree / "approved.txt").read_text() == "yes\n"
    assert not (tree / "rejected.txt").exists()
    decisions = [e["data"] for e in await support.events(api, run["id"], "policy.decision")]
    assert [d["decision"] for d in decisions] == ["allow", "ask", "ask"]
    assert decisions[0]["rule"] == "mode:auto" and decisions[1]["rule"].startswith("policy:")
    results = [e["data"] for e in await support.events(api, run["id"], "tool.result")]
    assert [r["ok"] for r in results] == [True, True, False]
    assert "not in this repository" in results[2]["error"]
    if case.rejection_ends_turn:
        # The turn ended at the rejection; the next model call (a message) carries it.
        resp = await api.post(f"/api/runs/{run['id']}/messages", json={"text": "Go on"})
        assert resp.status_code == 202, resp.text
        await support.wait_model_calls(fake, 4)
    # The model was told the call did not run (and, where the CLI carries it, why).
    told = case.rejection_told(fake, 3)
    assert case.rejection_phrase in told
    if case.told_reason:
        assert "not in this repository" in told and "Do not retry" in told
    await api.wait_status(run["id"], "review", "failed", timeout=acp.WAIT)


async def test_pause_interrupts_and_resume_continues_the_session(
    case: AgentCase,
    sqlite_api: Api,
    git_repo: Path,
    fake: FakeLLM,
    home: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    api = sqlite_api
    caplog.set_level(logging.INFO, "codeyard.agents")
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
        done = await acp.pause_and_resume(api, run, fake, 2, case.gone_when_paused)
        assert done["session_id"] == first["session_id"] and done["turns"] == 3
        sent = fake.model_calls(case.api)[-1].text()
        assert "Say alpha" in sent
        if case.session_keeps_replies:
            assert "First answer ALPHA." in sent
    else:
        fake.script([Reply(text="too late", delay=600), Reply(text="Resumed and finished.")])
        opts = case.options(fake, home)
        run = await acp.create(api, git_repo, case.name, case.model, opts, "Work slowly")
        done = await acp.pause_and_resume(api, run, fake, 1, case.gone_when_paused)
        assert done["turns"] == 2
    if case.interrupted_log:
        # Stopped through the protocol first: the CLI answered the interrupt by ending the turn.
        assert case.interrupted_log in caplog.text
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
    reason = failed["status_reason"]
    assert f"{case.label} failed the turn" in reason and "Backend exploded XYZ" in reason
    if case.error_detail:
        assert f"{case.label} failed the turn: Backend exploded XYZ{case.error_detail}" in reason
    if case.error_without_stderr:
        assert "Its last output" not in reason  # the CLI's stderr chatter stays in the logs
    # No more model calls than scripted (exactly one where the CLI retries nothing).
    assert 1 <= len(fake.model_calls(case.api)) <= case.error_replies
    assert support.processes_in(support.worktree(api, run)) == []


async def test_cancel_mid_tool_leaves_no_process(
    case: AgentCase, sqlite_api: Api, git_repo: Path, fake: FakeLLM, home: Path
) -> None:
    api = sqlite_api
    fake.script([Reply(tool_calls=(case.blocking_call(acp.BLOCKING),)), Reply(text="never")])
    opts = case.options(fake, home, permission_mode="auto")
    run = await acp.create(api, git_repo, case.name, case.model, opts, "Wait a while")
    await acp.cancel_leaves_no_process(api, run, fake)


@_cases(MID_TURN)
async def test_a_message_mid_tool_is_taken_into_the_running_turn(
    case: AgentCase, sqlite_api: Api, git_repo: Path, fake: FakeLLM, home: Path
) -> None:
    """A message sent while a tool runs reaches the model in the same turn (no second turn)."""
    api = sqlite_api
    fake.script(
        [
            # Long enough that a loaded machine still delivers the message while it runs.
            Reply(tool_calls=(case.call("sleep 6 && echo slept"),)),
            Reply(text="Noted the extra request."),
        ]
    )
    run = await acp.create(api, git_repo, case.name, case.model, case.options(fake, home), "Nap")
    await support.wait_model_calls(fake, 1)
    await support.wait_for_process(support.worktree(api, run), "sleep 6")
    resp = await api.post(f"/api/runs/{run['id']}/messages", json={"text": "Also: MIDTURN-42"})
    assert resp.status_code == 202, resp.text
    done = await api.wait_status(run["id"], "review", "failed", timeout=acp.WAIT)
    assert done["status"] == "review" and done["turns"] == 1, done
    calls = fake.model_calls(case.api)
    assert len(calls) == 2 and "MIDTURN-42" in calls[1].text()
    if case.steered:
        case.steered(fake, "MIDTURN-42")
    completed = [e["data"] for e in await support.events(api, run["id"], "turn.completed")]
    assert [c["result"] for c in completed] == ["Noted the extra request."]
    assert await _pending_messages(api, run["id"]) == []


@_cases(MID_TURN)
async def test_a_message_during_a_model_call_is_answered_in_the_same_turn(
    case: AgentCase, sqlite_api: Api, git_repo: Path, fake: FakeLLM, home: Path
) -> None:
    """Too late to ride along a tool result: still one Codeyard turn. Codex drops the model call
    still waiting for output and asks again with the message; Claude Code answers it next."""
    api = sqlite_api
    fake.script([Reply(text="Slow answer.", delay=4.0), Reply(text="Answered LATE-7.")])
    opts = case.options(fake, home)
    run = await acp.create(api, git_repo, case.name, case.model, opts, "Answer slowly")
    await support.wait_model_calls(fake, 1)
    resp = await api.post(f"/api/runs/{run['id']}/messages", json={"text": "And LATE-7?"})
    assert resp.status_code == 202, resp.text
    done = await api.wait_status(run["id"], "review", "failed", timeout=acp.WAIT)
    assert done["status"] == "review" and done["turns"] == 1, done
    calls = fake.model_calls(case.api)
    assert len(calls) == 2 and "And LATE-7?" in calls[1].text()
    if case.late:
        case.late(fake, "And LATE-7?")
    seen = await support.by_type(api, run["id"])
    assert [c["result"] for c in seen["turn.completed"]] == ["Answered LATE-7."]
    if case.late_message_drops_the_call:
        assert [m["text"] for m in seen["agent.message"]] == ["Answered LATE-7."]
        assert _sum_usage(seen["usage"]) == (100, 12), "the dropped call reported nothing"
    else:
        assert _sum_usage(seen["usage"]) == (200, 24), "both model calls are counted"
    assert await _pending_messages(api, run["id"]) == []


@_cases(RESTARTED)
async def test_server_restart_interrupts_and_resume_continues(
    case: AgentCase, sqlite_settings: Settings, git_repo: Path, fake: FakeLLM, home: Path
) -> None:
    fake.script([Reply(text="too late", delay=600), Reply(text="Back after the restart.")])
    opts = case.options(fake, home)
    async with running_api(sqlite_settings) as api:
        run = await acp.create(api, git_repo, case.name, case.model, opts, "Survive a restart")
        await support.wait_model_calls(fake, 1)
        tree = support.worktree(api, run)
        assert support.processes_in(tree)
    assert support.processes_in(tree) == [], "stopping the server must stop its agents"
    async with running_api(sqlite_settings) as api:
        stopped = (await api.get(f"/api/runs/{run['id']}")).json()
        assert stopped["status"] == "interrupted" and stopped["session_id"]
        resp = await api.post(f"/api/runs/{run['id']}/resume", json={})
        assert resp.status_code == 200, resp.text
        done = await api.wait_status(run["id"], "review", "failed", timeout=acp.WAIT)
        assert done["status"] == "review", done
        assert done["session_id"] == stopped["session_id"]
    sent = fake.model_calls(case.api)[-1].text()
    assert "Survive a restart" in sent and "Continue the task from where you left off" in sent


@_cases(LOST_SESSION)
async def test_a_lost_session_starts_a_new_one_and_says_so(
    case: AgentCase, sqlite_api: Api, git_repo: Path, fake: FakeLLM, home: Path
) -> None:
    api = sqlite_api
    assert case.session_files
    fake.script([Reply(text="First."), Reply(text="Fresh start.")])
    run = await acp.create(
        api, git_repo, case.name, case.model, case.options(fake, home), "Remember me"
    )
    first = await api.wait_status(run["id"], "review", "failed", timeout=acp.WAIT)
    assert first["status"] == "review", first
    shutil.rmtree(home / case.session_files)  # the CLI's session files are gone
    resp = await api.post(f"/api/runs/{run['id']}/messages", json={"text": "Still there?"})
    assert resp.status_code == 202, resp.text
    await support.wait_model_calls(fake, 2)
    second = await api.wait_status(run["id"], "review", "failed", timeout=acp.WAIT)
    assert second["status"] == "review", second
    assert second["session_id"] and second["session_id"] != first["session_id"]
    errors = [e["data"] for e in await support.events(api, run["id"], "error")]
    assert errors and case.lost_session_word in errors[0]["message"]
    assert errors[0]["detail"] == first["session_id"]
    assert "Remember me" not in fake.model_calls(case.api)[-1].text()
