"""The real Claude Code binary (bundled in claude-agent-sdk) against the fake model server: what
only Claude Code shows — its Write tool, usage and cost priced by the CLI with cache tokens, our
instructions in its system prompt, tools denied or allowed by its own options, the turn limit.

The scenarios every agent shares (tool calls, a message resuming the session, asks, pause and
resume, a restart, a lost session, messages mid-turn, a model error, cancel) are in the contract
suite, ``test_agent_contract.py``, with Claude Code's case in ``agent_cases.py``.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from codeyard.agents.claude import turn as claude_turn
from codeyard.executor.approvals import ApprovalGate
from codeyard.store import policies
from codeyard.testing.fake_llm import FakeLLM, Reply, ToolCall, Usage
from tests.clis.claude_support import MODEL, WAIT, create, options
from tests.clis.support import (
    approvals,
    end_recorded_while_exiting,
    events,
    worktree,
)
from tests.conftest import Api
from tests.support.timing_log import timing_lines

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("needs_claude")]

#: Anthropic list prices of MODEL per token: input, output, cache read, cache write.
PRICES = (3e-6, 15e-6, 3e-7, 3.75e-6)


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


async def test_the_turns_end_is_recorded_while_the_cli_exits(
    sqlite_api: Api,
    git_repo: Path,
    fake: FakeLLM,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After its result Claude Code only exits (its session file, SessionEnd hooks): the turn's
    end is recorded meanwhile (``TurnEnd.exiting``); the run's task lives until it is gone."""
    fake.script([Reply(text="Hi there.")])
    home = tmp_path / "home"
    await end_recorded_while_exiting(
        sqlite_api,
        claude_turn,
        monkeypatch,
        lambda: create(sqlite_api, git_repo, options(fake, home), "Say hi"),
        "claude",
    )


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


def _ts(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["ts"].replace("Z", "+00:00")).timestamp()


async def test_an_answered_approval_is_marked_when_the_decision_reaches_the_agent(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    """The approval bench's end point (``bench/agents_scale.py``): the server's timing lines
    for the wait ending (``approval answered``) and the decision handed to Claude Code
    (``decision delivered``) name the run and the call, after the answer and before the call's
    result."""
    api = sqlite_api
    call = {"file_path": "{cwd}/notes.txt", "content": "seen\n"}
    fake.script([Reply(tool_calls=(ToolCall("Write", call),)), Reply(text="Wrote it.")])
    with timing_lines() as lines:
        opts = options(fake, tmp_path / "home", permission_mode="default")
        run = await create(api, git_repo, opts, "Write notes.txt")
        pending = (await approvals(api, run["id"]))[0]
        resp = await api.post(
            f"/api/approvals/{pending['id']}/resolve", json={"decision": "approved"}
        )
        assert resp.status_code == 200, resp.text
        done = await api.wait_status(run["id"], "review", "failed", timeout=WAIT)
    assert done["status"] == "review", done
    marks: dict[str, float] = {}
    for line in lines.lines:
        run_id, _, rest = line.partition(" ")
        what, _, at = rest.rpartition(" ")
        if run_id == run["id"]:
            marks.setdefault(what, float(at))
    call_id = pending["call_id"]
    answered, delivered = f"approval answered {call_id}", f"decision delivered {call_id}"
    assert answered in marks and delivered in marks, sorted(marks)
    (resolved,) = await events(api, run["id"], "approval.resolved")
    (result,) = await events(api, run["id"], "tool.result")
    # Event times have millisecond resolution: a 1 ms allowance at each end.
    assert _ts(resolved) - 0.001 <= marks[answered] <= marks[delivered]
    assert marks[delivered] <= _ts(result) + 0.001


async def test_the_agent_gets_its_answer_before_the_answer_is_recorded_as_used(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Marking an answered approval used is a write that waits its turn in the writer: the
    agent must not wait for it (held here until the CLI has run the approved Write), and it
    is still recorded behind."""
    api = sqlite_api
    call = {"file_path": "{cwd}/notes.txt", "content": "seen\n"}
    fake.script([Reply(tool_calls=(ToolCall("Write", call),)), Reply(text="Wrote it.")])
    held = asyncio.Event()
    close = ApprovalGate._close

    async def held_close(self: ApprovalGate, tx: Any, *args: Any) -> None:
        await held.wait()
        await close(self, tx, *args)

    monkeypatch.setattr(ApprovalGate, "_close", held_close)
    opts = options(fake, tmp_path / "home", permission_mode="default")
    run = await create(api, git_repo, opts, "Write notes.txt")
    pending = (await approvals(api, run["id"]))[0]
    resp = await api.post(f"/api/approvals/{pending['id']}/resolve", json={"decision": "approved"})
    assert resp.status_code == 200, resp.text
    notes = worktree(api, run) / "notes.txt"
    try:
        for _ in range(600):  # the CLI runs the Write it was allowed to
            if notes.exists():
                break
            await asyncio.sleep(0.05)
        assert notes.exists(), "the agent did not get its answer while it was being recorded"
    finally:
        held.set()
    done = await api.wait_status(run["id"], "review", "failed", timeout=WAIT)
    assert done["status"] == "review", done
    async with api.services.engine.connect() as conn:
        row = await policies.get_approval(conn, pending["id"])
    assert row["used_at"] is not None and row["used_by"] == pending["call_id"], row
