"""What a run's resumed turn is told after its worker host was lost mid-turn (issue 16).

The notice is built from the run's real event log (SQLite and PostgreSQL): the cut-off
attempt's tool calls, their outcomes and the files it changed after the checkpoint the new host
restored, bounded. The end-to-end cases (a real Claude Code and a real Codex run moved off a
killed worker, whose resumed model request carries this notice) are in
``test_temporal_scale_out.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from codeyard.agents.base import RESUME_NOTICE, SESSION_BEHIND
from codeyard.domain.events import (
    CheckpointCreated,
    CheckpointRestored,
    FileChanged,
    NewEvent,
    StoredEvent,
    ToolCall,
    ToolResult,
    TurnStarted,
)
from codeyard.domain.status import RunStatus
from codeyard.store import events, runs
from codeyard.store.writer import Tx
from codeyard.temporal import failover
from tests.conftest import Api

pytestmark = pytest.mark.anyio
MESSAGES = frozenset({"agent.message"})


def _call(n: int, command: str) -> ToolCall:
    return ToolCall(
        call_id=f"c{n}", tool="Bash", kind="bash", title=command, input={"command": command}
    )


def _result(n: int, output: str, ok: bool = True) -> ToolResult:
    return ToolResult(call_id=f"c{n}", ok=ok, output=output, error=None, duration_ms=5)


def _checkpoint(number: int, turn: int) -> CheckpointCreated:
    return CheckpointCreated(
        checkpoint={"number": number, "turn": turn, "created_at": "2026-12-04T10:00:00.123Z"}
    )


async def _run_with(api: Api, git_repo: Path, log: list[NewEvent]) -> str:
    body = {"prompt": "p", "repo_path": str(git_repo), "provider": "script", "draft": True}
    resp = await api.post("/api/runs", json=body)
    assert resp.status_code == 201, resp.text
    run_id = str(resp.json()["id"])
    await api.services.writer.append(run_id, log)
    return run_id


async def test_the_notice_names_the_hosts_and_what_the_cut_off_attempt_did_since_the_checkpoint(
    api: Api, git_repo: Path
) -> None:
    run_id = await _run_with(
        api,
        git_repo,
        [
            TurnStarted(turn=1, prompt="p", source="create"),
            _call(1, "echo BEFORE-THE-CHECKPOINT"),  # its effect is in the checkpoint: not told
            _result(1, "before"),
            _checkpoint(1, 1),
            TurnStarted(turn=2, prompt="REQUEST-TWO", source="message"),
            _call(2, "echo CUT > cut.txt && echo wrote-it"),
            _result(2, "wrote-it"),
            FileChanged(path="cut.txt", change="added"),
            _call(3, "false"),
            _result(3, "exit 1", ok=False),
            _call(4, "sleep 600"),  # running when the host died: no result
        ],
    )
    restored = {"number": 1, "turn": 1, "created_at": "2026-12-04T10:00:00.123Z"}
    async with api.services.engine.connect() as conn:
        notice = await failover.cut_off_notice(conn, run_id, "h1", "h2", restored)
    assert notice.startswith("[Codeyard] Your previous turn was cut off: worker host h1")
    assert "continues on worker host h2" in notice
    assert "checkpoint 1 (turn 1, 2026-12-04 10:00:00 UTC)" in notice
    assert "BEFORE-THE-CHECKPOINT" not in notice
    assert "- Bash: echo CUT > cut.txt && echo wrote-it → ok: wrote-it" in notice
    assert "- Bash: false → failed: exit 1" in notice
    assert "- Bash: sleep 600 → no result recorded (it ran when the host was lost" in notice
    assert "Files it had changed (now back as they were at the checkpoint): cut.txt." in notice
    assert notice.endswith("redo what is needed to finish that turn's request, which was:")

    # No checkpoint restored: everything since the run began was lost, and is told.
    async with api.services.engine.connect() as conn:
        notice = await failover.cut_off_notice(conn, run_id, "h1", "h2", None)
    assert "back at the run's base commit" in notice and "BEFORE-THE-CHECKPOINT" in notice


async def test_after_a_restore_the_take_over_starts_from_the_restored_checkpoint(
    api: Api, git_repo: Path
) -> None:
    """Checkpoint 1 restored (undo: 2), then the turn cut off: the take-over tries 1 first and
    tells only what came after the undo; a checkpoint taken since puts the order back."""
    run_id = await _run_with(
        api,
        git_repo,
        [
            TurnStarted(turn=1, prompt="p", source="create"),
            _checkpoint(1, 1),
            _call(1, "echo BEFORE-THE-RESTORE"),  # undone by the restore: not told
            _result(1, "before"),
            _checkpoint(2, 1),
            CheckpointRestored(checkpoint_id="chk_1", number=1, undo_checkpoint_id="chk_2"),
            TurnStarted(turn=2, prompt="REQUEST-TWO", source="message"),
            _call(2, "echo AFTER-THE-RESTORE"),
            _result(2, "after"),
        ],
    )
    at = "2026-12-04T10:00:00.123Z"
    one = {"id": "chk_1", "number": 1, "turn": 1, "kind": "turn", "created_at": at}
    two = {"id": "chk_2", "number": 2, "turn": 1, "kind": "pre_restore", "created_at": at}
    three = {"id": "chk_3", "number": 3, "turn": 2, "kind": "turn", "created_at": at}
    async with api.services.engine.connect() as conn:
        order, since = await failover.take_over_order(conn, run_id, [one, two])
        notice = await failover.cut_off_notice(conn, run_id, "h1", "h2", one, since)
        later, none = await failover.take_over_order(conn, run_id, [one, two, three])
    assert ([r["number"] for r in order], since) == ([1, 2], two)
    assert "The files are as of checkpoint 1 (turn 1" in notice
    assert "AFTER-THE-RESTORE" in notice and "BEFORE-THE-RESTORE" not in notice
    assert ([r["number"] for r in later], none) == ([3, 2, 1], None)


def _stored(events: list[NewEvent]) -> list[StoredEvent]:
    return [
        StoredEvent(i, "r", "p", i, e.type, "2026-12-04T10:00:00.000Z", e.model_dump_json())
        for i, e in enumerate(events, 1)
    ]


def test_the_summary_is_bounded_however_much_the_attempt_did() -> None:
    log: list[NewEvent] = []
    for n in range(1, 31):
        log += [_call(n, f"step-{n:02d} " + "x" * 500), _result(n, "out " * 400)]
        log.append(FileChanged(path=f"f{n:02d}.txt", change="modified"))
    text = failover.cut_off_summary(_stored(log))
    lines = [line for line in text.splitlines() if line.startswith("- ")]
    shown = [line.split()[2] for line in lines if "step-" in line]
    assert shown == [f"step-{n:02d}" for n in (*range(1, 6), *range(16, 31))]
    assert "- … 10 more tool calls …" in lines
    assert all(len(line) < failover.NOTICE_TITLE + failover.NOTICE_OUTPUT + 40 for line in lines)
    assert "f20.txt and 10 more." in text and "f21.txt" not in text
    assert len(text) < 10_000
    long_paths = [FileChanged(path=f"{n}/" + "d" * 1000, change="added") for n in range(30)]
    assert len(failover.cut_off_summary(_stored(long_paths))) < 4_000
    assert failover.cut_off_summary(_stored([TurnStarted(turn=1, prompt="p", source="x")])) == ""


async def test_the_resumed_turn_is_sent_the_notice_then_its_original_request_once(
    sqlite_api: Api, git_repo: Path
) -> None:
    """The executor's side, on the local executor with the script agent (which says the prompt
    of a message turn back): a run whose turn 2 (a message) was cut off and resumed once
    already (turn 3, a resume) is queued with a notice for that turn, as a host taking it over
    leaves it. The agent gets the notice, then turn 2's request (not the run's first prompt);
    the turn's end drops the notice and the session mark, so no later turn repeats them."""
    api = sqlite_api
    body = {
        "prompt": "FIRST-PROMPT",
        "repo_path": str(git_repo),
        "provider": "script",
        "agent_options": {"scenario": {"steps": [{"say": "one"}]}},
    }
    resp = await api.post("/api/runs", json=body)
    assert resp.status_code == 201, resp.text
    run_id = str(resp.json()["id"])
    await api.wait_status(run_id, "review", timeout=60)
    state = {RESUME_NOTICE: {"turn": 3, "text": "NOTICE-X"}, SESSION_BEHIND: True}

    async def cut_off(tx: Tx) -> None:
        await runs.update_fields(tx, run_id, turns=3, agent_state=state)
        await tx.emit_one(run_id, TurnStarted(turn=2, prompt="REQUEST-TWO", source="message"))
        resumed = TurnStarted(turn=3, prompt="", source="resume", resumed_source="message")
        await tx.emit_one(run_id, resumed)
        await runs.set_status(tx, run_id, RunStatus.QUEUED, "worker h1 was lost")

    await api.services.writer.run(cut_off)
    await api.services.executor.submit(run_id)
    done = await api.wait_status(run_id, "review", "failed", timeout=60)
    assert done["status"] == "review", done
    async with api.services.engine.connect() as conn:
        said = [e.data["text"] for e in await events.read_all(conn, run_id, MESSAGES)]
        left = (await runs.get(conn, run_id))["agent_state"]
    assert said == ["one", "You said: NOTICE-X\n\nREQUEST-TWO"], said
    assert RESUME_NOTICE not in left and SESSION_BEHIND not in left, left
