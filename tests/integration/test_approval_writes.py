"""What an agent's ask writes to its run (issue 15): a running run that opens an approval is
shown ``waiting`` with its count of pending approvals in one write of the run row (it was two:
the count, then the status with the count again). A run already waiting is recounted. Once the
agent has its answer, an approval answered through the door is marked used in one statement
(it was read first); one answered by trust is still recorded through the door. Through the
writer, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest

from codeyard.domain.errors import Conflict, NotFound
from codeyard.domain.events import utc_now
from codeyard.domain.tools import ToolRequest
from codeyard.executor.approvals import ApprovalGate
from codeyard.executor.handle import RunHandle
from codeyard.executor.interface import ApprovalAnswer, Signal
from codeyard.services import approvals as approval_service
from codeyard.store import approvals as approval_door
from codeyard.store import events, policies, projects, runs
from codeyard.store.db import create_engine
from codeyard.store.writer import Tx, Writer
from tests.support.sql import statements
from tests.support.writer_runs import PROJECT, approval_row, run_row

pytestmark = pytest.mark.anyio


@pytest.fixture
async def writer(database_url: str) -> AsyncIterator[Writer]:
    engine = create_engine(database_url)
    w = Writer(engine, lambda _batch: None)
    await w.start()
    try:

        async def add(tx: Tx) -> None:
            now = utc_now()
            await projects.insert_project(
                tx, {"id": PROJECT, "name": "p", "slug": "p", "created_at": now, "updated_at": now}
            )
            row = run_row("run_a", 1)
            row.update(status="running", started_at=now)
            await runs.insert(tx, row)

        await w.run(add)
        yield w
    finally:
        await w.stop()
        await engine.dispose()


async def _open(writer: Writer, n: int) -> tuple[dict[str, Any], list[str]]:
    def run_writes(sql: str) -> bool:  # (not the writer's own touch of the events' numbering)
        return sql.lstrip().upper().startswith("UPDATE RUNS") and "SET last_seq" not in sql

    with statements(writer.engine, run_writes) as sent:
        run = await writer.run(
            lambda tx: approval_door.open_approval(
                tx, approval_row("run_a", str(n)), gate=False, status_reason="approval"
            )
        )
    return run, sent


async def test_an_ask_writes_its_run_once(writer: Writer) -> None:
    run, sent = await _open(writer, 1)
    assert (run["status"], run["status_reason"], run["pending_approvals"]) == (
        "waiting",
        "approval",
        1,
    )
    assert len(sent) == 1, sent

    # A second ask while the run waits: the count only (the status stays).
    run, sent = await _open(writer, 2)
    assert (run["status"], run["pending_approvals"]) == ("waiting", 2)
    assert len(sent) == 1, sent
    async with writer.engine.connect() as conn:
        stored = await runs.get(conn, "run_a")
    assert (stored["status"], stored["pending_approvals"]) == ("waiting", 2)

    # Both answered: running again, with no approval pending.
    for n in (1, 2):
        await writer.run(
            lambda tx, n=n: approval_door.resolve(
                tx, f"apr_{n}", "approved", decided_by="operator", reason=None
            )
        )
    async with writer.engine.connect() as conn:
        stored = await runs.get(conn, "run_a")
    assert (stored["status"], stored["pending_approvals"]) == ("running", 0)


async def test_an_answer_is_marked_used_without_a_read(writer: Writer) -> None:
    gate = ApprovalGate(writer.engine, writer, "default")
    for n in (1, 2):
        await _open(writer, n)
    await writer.run(
        lambda tx: approval_door.resolve(tx, "apr_1", "approved", decided_by="op", reason=None)
    )
    answer = {"decision": "approved", "decided_by": "op", "reason": None}

    def approvals_sql(sql: str) -> bool:
        return "approvals" in sql and "SET last_seq" not in sql

    with statements(writer.engine, approvals_sql) as sent:
        await writer.run(lambda tx: gate._close(tx, "apr_1", "call_1", answer))
    assert len(sent) == 1 and sent[0].lstrip().upper().startswith("UPDATE"), sent

    # Trust answered apr_2 in this process (not through the API): recorded through the door.
    trusted = {"decision": "approved", "decided_by": "trust", "reason": "run is trusted"}
    await writer.run(lambda tx: gate._close(tx, "apr_2", "call_2", trusted))
    async with writer.engine.connect() as conn:
        rows = {n: await policies.get_approval(conn, f"apr_{n}") for n in (1, 2)}
        stored = await runs.get(conn, "run_a")
    assert [(r["status"], r["decided_by"], r["used_by"]) for r in rows.values()] == [
        ("approved", "op", "call_1"),
        ("approved", "trust", "call_2"),
    ]
    assert (stored["status"], stored["pending_approvals"]) == ("running", 0)


async def test_an_asked_call_records_its_decision_with_its_approval(writer: Writer) -> None:
    """The decision's record (audit row, ``policy.decision``) and the approval it opens are
    one writer job: one transaction per asked call, not two (issue 15: ~12 writer
    transactions per Claude Code run, this one of them); the decision's event comes first."""
    gate = ApprovalGate(writer.engine, writer, "default")
    handle = RunHandle("run_a")
    request = ToolRequest("call_w", "Write", "write", {"file_path": "notes.txt", "content": "x"})
    batches = writer.batches
    deciding = asyncio.ensure_future(gate.decide(handle, request))
    while not handle.approvals and not deciding.done():
        await asyncio.sleep(0.01)
    async with writer.engine.connect() as conn:  # the job that registered the wait committed
        while writer.batches == batches:
            await asyncio.sleep(0.01)
        pending = await policies.get_approval(conn, next(iter(handle.approvals)))
        types = [e.type for e in await events.read_all(conn, "run_a")]
    assert writer.batches - batches == 1
    assert pending["status"] == "pending"
    assert types == ["policy.decision", "approval.requested", "run.status"], types
    answer = {"decision": "approved", "decided_by": "op", "reason": None}
    next(iter(handle.approvals.values())).set_result(answer)
    assert (await deciding).allow


def _reads_and_approvals(sql: str) -> bool:
    """The job's own statements: reads, and writes to approvals (not the events' numbering)."""
    words = sql.upper().split()
    if words[:2] == ["UPDATE", "APPROVALS"]:
        return True
    return words[0] == "SELECT" and "FOR" not in words and ("RUNS" in words or "APPROVALS" in words)


async def test_an_answer_is_one_statement_and_its_run_one_read(writer: Writer) -> None:
    """An answer is on the path of a waiting agent, and each statement of its job is a trip to
    the driver's thread and back (issue 15): the pending approval is answered in one
    ``UPDATE … RETURNING`` (no read first), and its run is read with its pending approvals
    counted in one statement (two before: the count, then the run). The same when it opens:
    one read of the run and its count. A second answer is still refused (409), an unknown
    approval is still 404."""
    with statements(writer.engine, _reads_and_approvals) as opened:
        await writer.run(
            lambda tx: approval_door.open_approval(
                tx, approval_row("run_a", "1"), gate=False, status_reason="approval"
            )
        )
    assert len(opened) == 1 and "count" in opened[0].lower(), opened

    with statements(writer.engine, _reads_and_approvals) as sent:
        row = await writer.run(
            lambda tx: approval_door.resolve(tx, "apr_1", "approved", decided_by="op", reason=None)
        )
    assert (row["status"], row["decided_by"], row["call_id"]) == ("approved", "op", "call_1")
    assert [s.lstrip().split()[0].upper() for s in sent] == ["UPDATE", "SELECT"], sent
    assert "RETURNING" in sent[0].upper() and "count" in sent[1].lower(), sent
    async with writer.engine.connect() as conn:
        stored = await runs.get(conn, "run_a")
    assert (stored["status"], stored["pending_approvals"]) == ("running", 0)

    with pytest.raises(Conflict):
        await writer.run(
            lambda tx: approval_door.resolve(tx, "apr_1", "rejected", decided_by="op", reason=None)
        )
    with pytest.raises(NotFound):
        await writer.run(
            lambda tx: approval_door.resolve(tx, "apr_9", "approved", decided_by="op", reason=None)
        )
    async with writer.engine.connect() as conn:
        kept = await policies.get_approval(conn, "apr_1")
    assert (kept["status"], kept["decided_by"]) == ("approved", "op")


class _Waiting:
    """The executor's surface the approvals service uses, as the local executor does it
    (``deliver_now`` wakes the future a call waits on); ``gone``: the call stopped waiting
    between the service's look and the answer's commit."""

    def __init__(self, handle: RunHandle, gone: bool = False) -> None:
        self.handle, self.gone = handle, gone

    def waiting_on(self, approval_id: str) -> str | None:
        return self.handle.run_id if self.gone or approval_id in self.handle.approvals else None

    def deliver_now(self, run_id: str, signal: Signal) -> bool:
        assert isinstance(signal, ApprovalAnswer)
        future = self.handle.approvals.get(signal.approval_id)
        if self.gone or future is None or future.done():
            return False
        future.set_result(dict(signal.answer))
        return True

    async def signal(self, run_id: str, signal: Signal) -> bool:
        return self.deliver_now(run_id, signal)


def _services(writer: Writer, executor: _Waiting) -> Any:
    return SimpleNamespace(engine=writer.engine, writer=writer, executor=executor)


async def test_an_answer_its_call_waits_for_is_marked_used_by_its_own_commit(
    writer: Writer,
) -> None:
    """The call waiting on an approval is named on it (``used_by``) when it opens, and an
    answer given while it waits here marks it used in the answer's own statement: one commit
    per answer (two before: the gate marked it in a job of its own after waking), and the
    run's next decision has nothing to wait for (``handle.closing``)."""
    gate = ApprovalGate(writer.engine, writer, "default")
    handle = RunHandle("run_a")
    request = ToolRequest("call_w", "Write", "write", {"file_path": "notes.txt", "content": "x"})
    batches = writer.batches
    deciding = asyncio.ensure_future(gate.decide(handle, request))
    while writer.batches == batches and not deciding.done():  # the ask committed
        await asyncio.sleep(0.01)
    (approval_id,) = handle.approvals
    async with writer.engine.connect() as conn:
        asked = await policies.get_approval(conn, approval_id)
    assert (asked["status"], asked["used_by"], asked["used_at"]) == ("pending", "call_w", None)

    batches = writer.batches
    svc = _services(writer, _Waiting(handle))
    await approval_service.resolve(svc, approval_id, "approved", None, None)
    assert (await deciding).allow
    assert handle.closing is None
    assert writer.batches - batches == 1
    async with writer.engine.connect() as conn:
        answered = await policies.get_approval(conn, approval_id)
        stored = await runs.get(conn, "run_a")
    assert (answered["status"], answered["used_by"]) == ("approved", "call_w")
    assert answered["used_at"] == answered["resolved_at"]
    assert (stored["status"], stored["pending_approvals"]) == ("running", 0)


async def test_an_answer_its_call_stopped_waiting_for_stays_unused(writer: Writer) -> None:
    """The call stopped waiting between the service's look and the answer's commit (its turn
    was cut off): the answer is recorded, not used, and the resumed agent's identical call
    takes it (bound) instead of asking again."""
    await _open(writer, 1)
    await writer.run(lambda tx: approval_door.waits(tx, "apr_1", "call_1"))
    svc = _services(writer, _Waiting(RunHandle("run_a"), gone=True))
    row = await approval_service.resolve(svc, "apr_1", "approved", None, None)
    assert row["status"] == "approved"
    async with writer.engine.connect() as conn:
        stored = await policies.get_approval(conn, "apr_1")
        bound = await approval_door.bindable(conn, "run_a", "fp_1")
    assert (stored["status"], stored["used_at"]) == ("approved", None)
    assert bound is not None and bound["id"] == "apr_1"
