"""Fencing (issue 16): a run's writes carry its attempt; a stale attempt's writes are refused.

Real app, real SQLite and PostgreSQL: a draft run stands in for a run an executor took, the
attempt moves on as when another worker takes the run over, and the old attempt's writes
(event appends, a job that changes columns and emits, a status change) are refused whole.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from codeyard.agents.process import boot_id
from codeyard.domain import events as ev
from codeyard.domain.status import RunStatus
from codeyard.executor.recovery import forget_finished
from codeyard.run_workspace.checkpointing import take_checkpoint
from codeyard.store import fencing, processes, runs, schema
from codeyard.store.writer import Tx
from tests.conftest import Api

pytestmark = pytest.mark.anyio


async def _draft(api: Api, repo: Path) -> dict[str, Any]:
    body = {"prompt": "fenced", "repo_path": str(repo), "provider": "script", "draft": True}
    resp = await api.post("/api/runs", json=body)
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


async def _row(api: Api, run_id: str) -> dict[str, Any]:
    async with api.services.engine.connect() as conn:
        row = await runs.get(conn, run_id)
        count = (
            await conn.execute(
                select(func.count())
                .select_from(schema.events)
                .where(schema.events.c.run_id == run_id)
            )
        ).scalar_one()
    return {**row, "event_count": count}


async def _as(attempt: fencing.Fence, coro: Any) -> Any:
    """Run ``coro`` with the fence set, as an executor's task for that attempt would."""
    token = fencing.current.set(attempt)
    try:
        return await coro
    finally:
        fencing.current.reset(token)


async def test_a_stale_attempt_cannot_write(api: Api, git_repo: Path) -> None:
    writer = api.services.writer
    run_id = (await _draft(api, git_repo))["id"]
    assert (await _row(api, run_id))["attempt"] == 0

    first = await writer.run(lambda tx: runs.begin_attempt(tx, run_id))
    assert first == 1
    one = fencing.Fence(run_id, first)
    stored = await _as(one, writer.append(run_id, [ev.ErrorEvent(message="attempt 1 writes")]))
    assert len(stored) == 1

    # Another worker takes the run over (the first one is presumed dead).
    second = await writer.run(lambda tx: runs.begin_attempt(tx, run_id))
    assert second == 2
    before = await _row(api, run_id)

    with pytest.raises(fencing.StaleAttempt) as refused:
        await _as(one, writer.append(run_id, [ev.ErrorEvent(message="late write")]))
    assert refused.value.attempt == 1 and refused.value.current_attempt == 2

    async def job(tx: Tx) -> None:  # a column change and an event: both or neither
        await runs.update_fields(tx, run_id, title="stale title")
        await tx.emit_one(run_id, ev.ErrorEvent(message="late job"))

    with pytest.raises(fencing.StaleAttempt):
        await _as(one, writer.run(job))

    async def emit_only(tx: Tx) -> None:  # e.g. a checkpoint row with its checkpoint.created
        await tx.emit_one(run_id, ev.ErrorEvent(message="late checkpoint"))

    with pytest.raises(fencing.StaleAttempt):
        await _as(one, writer.run(emit_only))
    with pytest.raises(fencing.StaleAttempt):
        await _as(one, writer.run(lambda tx: runs.set_status(tx, run_id, RunStatus.QUEUED)))

    after = await _row(api, run_id)
    assert after["title"] == before["title"] != "stale title"
    assert after["event_count"] == before["event_count"]
    assert after["last_seq"] == before["last_seq"]
    assert after["status"] == "draft"

    # The current attempt writes, and numbering continues without a gap.
    two = fencing.Fence(run_id, second)
    fresh = await _as(two, writer.append(run_id, [ev.ErrorEvent(message="attempt 2 writes")]))
    assert fresh[0].seq == before["last_seq"] + 1
    # Writes outside any attempt (the API, recovery) are the control plane's: not fenced.
    unfenced = await writer.append(run_id, [ev.ErrorEvent(message="operator side")])
    assert unfenced[0].seq == before["last_seq"] + 2


async def test_begin_attempt_only_in_a_status_takes_the_run_once(api: Api, git_repo: Path) -> None:
    """Two executors racing for one queued run: only the one that finds it queued wins."""
    writer = api.services.writer
    run_id = (await _draft(api, git_repo))["id"]
    taken = await writer.run(lambda tx: runs.begin_attempt(tx, run_id, only_in=RunStatus.QUEUED))
    assert taken is None  # a draft is not queued: nobody takes it
    assert (await _row(api, run_id))["attempt"] == 0
    assert await writer.run(lambda tx: runs.begin_attempt(tx, "run_missing")) is None


async def test_a_take_or_a_forget_fenced_on_an_attempt_the_run_moved_past_does_nothing(
    api: Api, git_repo: Path
) -> None:
    """A worker host takes a run, and drops its finished process records, for the attempt it
    found the run on: once another taker moved the run past that attempt, its take takes
    nothing and the records stay (they are the new taker's to drop)."""
    writer, engine = api.services.writer, api.services.engine
    run_id = (await _draft(api, git_repo))["id"]
    found = fencing.Fence(run_id, 0)
    await writer.run(lambda tx: runs.begin_attempt(tx, run_id))  # another taker: attempt 1
    assert await _as(found, writer.run(lambda tx: runs.begin_attempt(tx, run_id))) is None
    assert (await _row(api, run_id))["attempt"] == 1
    taken = await _as(
        fencing.Fence(run_id, 1), writer.run(lambda tx: runs.begin_attempt(tx, run_id))
    )
    assert taken == 2

    gone_group = 2**22 + 7  # above any pid: a recorded group that is gone
    await writer.run(lambda tx: processes.add(tx, run_id, gone_group, 1, boot_id(), "agent"))
    with pytest.raises(fencing.StaleAttempt):
        await _as(fencing.Fence(run_id, 1), forget_finished(engine, writer, run_id))
    async with engine.connect() as conn:
        assert len(await processes.of_run(conn, run_id)) == 1
    await _as(fencing.Fence(run_id, 2), forget_finished(engine, writer, run_id))
    async with engine.connect() as conn:
        assert await processes.of_run(conn, run_id) == []


async def test_the_local_executor_runs_each_take_as_a_new_attempt(
    sqlite_api: Api, git_repo: Path
) -> None:
    """A run the local executor takes twice (a run, then a follow-up message) is on attempt 2,
    and its writes all went through (its own attempt was current each time)."""
    api = sqlite_api
    body = {
        "prompt": "hi",
        "repo_path": str(git_repo),
        "provider": "script",
        "agent_options": {"scenario": {"steps": [{"say": "done"}]}},
    }
    resp = await api.post("/api/runs", json=body)
    assert resp.status_code == 201, resp.text
    run_id = resp.json()["id"]
    await api.wait_status(run_id, "review")
    assert (await _row(api, run_id))["attempt"] == 1
    resp = await api.post(f"/api/runs/{run_id}/messages", json={"text": "again"})
    assert resp.status_code in (200, 201, 202), resp.text
    await api.wait_status(run_id, "review")
    row = await _row(api, run_id)
    assert row["attempt"] == 2
    assert row["turns"] == 2


async def test_a_stale_attempt_takes_no_checkpoint(sqlite_api: Api, git_repo: Path) -> None:
    """Neither the checkpoint's git ref nor its row: the lost attempt is refused before git."""
    api = sqlite_api
    body = {
        "prompt": "cp",
        "repo_path": str(git_repo),
        "provider": "script",
        "agent_options": {"scenario": {"steps": [{"write": {"path": "a.txt", "content": "a"}}]}},
    }
    resp = await api.post("/api/runs", json=body)
    assert resp.status_code == 201, resp.text
    run_id = resp.json()["id"]
    await api.wait_status(run_id, "review")
    engine, writer = api.services.engine, api.services.writer
    async with engine.connect() as conn:
        run = await runs.get(conn, run_id)
    current = fencing.Fence(run_id, run["attempt"])
    made = await _as(current, take_checkpoint(engine, writer, run, "manual", None))

    await writer.run(lambda tx: runs.begin_attempt(tx, run_id))  # another worker took it
    with pytest.raises(fencing.StaleAttempt):
        await _as(current, take_checkpoint(engine, writer, run, "manual", None))

    refs = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname)", f"refs/codeyard/{run_id}/"],
        cwd=git_repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert f"refs/codeyard/{run_id}/{made['number']}" in refs
    assert f"refs/codeyard/{run_id}/{made['number'] + 1}" not in refs
    listed = (await api.get(f"/api/runs/{run_id}/checkpoints")).json()
    numbers = [c["number"] for c in listed.get("data", listed)]
    assert made["number"] in numbers and made["number"] + 1 not in numbers
