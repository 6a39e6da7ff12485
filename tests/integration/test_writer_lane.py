"""Urgent writer jobs go ahead of other runs' queued writes, never ahead of their own run's
(SQLite and PostgreSQL, issue 15: an approval's answer waited behind 60 agents' appends).

A job submitted with ``Writer.run(urgent_for=R)`` (an approval's answer, a tool call's
decision) is committed in a batch of its own ahead of the items queued before it, unless one
of them may write to R: an append to R, an item fenced on R, or a job with neither fence nor
declared run. The writer is held by a job that waits on an event while the rest is queued
behind it, so the queue's order is the test's; the order of the commits is read back from the
event ids (ids are given in commit order on both databases) and from the batches the writer
handed on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from codeyard.domain import events as ev
from codeyard.domain.events import StoredEvent
from codeyard.store import approvals as approval_door
from codeyard.store import fencing
from codeyard.store.db import create_engine
from codeyard.store.writer import Tx, Writer
from tests.support.writer_runs import add_runs, approval_row

pytestmark = pytest.mark.anyio


@pytest.fixture
async def writer(database_url: str) -> AsyncIterator[tuple[Writer, list[list[StoredEvent]]]]:
    engine = create_engine(database_url)
    batches: list[list[StoredEvent]] = []
    w = Writer(engine, batches.append, batch_seconds=60)  # batches by count, not time
    await w.start()
    try:
        await add_runs(w, "run_a", "run_b", "run_c")
        yield w, batches
    finally:
        await asyncio.wait_for(w.stop(), 10)
        await engine.dispose()


def _said(name: str) -> list[ev.NewEvent]:
    return [ev.ErrorEvent(message=name)]


def _emitting(run_id: str, name: str) -> Callable[[Tx], Awaitable[str]]:
    async def job(tx: Tx) -> str:
        await tx.emit(run_id, _said(name))
        return name

    return job


async def _fenced(run_id: str, submit: Callable[[], Awaitable[Any]]) -> Any:
    """Submit from a task acting for ``run_id``'s attempt (as an executor's tasks do)."""
    fencing.current.set(fencing.Fence(run_id, 0))
    return await submit()


def _job_of(w: Writer, run_id: str, name: str) -> Callable[[], Awaitable[str]]:
    return lambda: w.run(_emitting(run_id, name))


class Held:
    """The writer busy with one job until ``release``; what is submitted meanwhile queues."""

    def __init__(self, w: Writer) -> None:
        self.w = w
        self.inside = asyncio.Event()
        self.go = asyncio.Event()
        self.tasks: list[asyncio.Task[Any]] = []

    async def __aenter__(self) -> Held:
        async def hold(tx: Tx) -> None:
            self.inside.set()
            await asyncio.wait_for(self.go.wait(), 30)

        self.tasks.append(asyncio.create_task(self.w.run(hold)))
        await asyncio.wait_for(self.inside.wait(), 30)
        return self

    def submit(self, write: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(write)
        self.tasks.append(task)
        return task

    async def release(self) -> None:
        for _ in range(5):  # every task created has submitted (put_nowait on its first step)
            await asyncio.sleep(0)
        self.go.set()
        await asyncio.wait_for(asyncio.gather(*self.tasks), 30)

    async def __aexit__(self, *exc: object) -> None:
        self.go.set()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def _by_message(batches: list[list[StoredEvent]]) -> dict[str, tuple[int, int, int]]:
    """message → (batch index, event id, seq)."""
    out: dict[str, tuple[int, int, int]] = {}
    for k, batch in enumerate(batches):
        for e in batch:
            message = e.data.get("message")
            if isinstance(message, str):
                out[message] = (k, e.id, e.seq)
    return out


async def test_an_urgent_job_overtakes_other_runs_appends_but_not_its_own_runs_earlier_write(
    writer: tuple[Writer, list[list[StoredEvent]]],
) -> None:
    w, batches = writer
    async with Held(w) as held:
        held.submit(w.append("run_b", _said("b1")))
        held.submit(w.append("run_a", _said("a1")))
        held.submit(_fenced("run_b", _job_of(w, "run_b", "b job")))
        c_urgent = held.submit(w.run(_emitting("run_c", "c urgent"), urgent_for="run_c"))
        a_urgent = held.submit(w.run(_emitting("run_a", "a urgent"), urgent_for="run_a"))
        held.submit(w.append("run_c", _said("c2")))
        await held.release()
    assert (await c_urgent, await a_urgent) == ("c urgent", "a urgent")
    got = _by_message(batches)
    # Run C's answer went ahead of the writes queued before it, in a batch of its own.
    assert got["c urgent"][1] < min(got[m][1] for m in ("b1", "a1", "b job"))
    assert got["c urgent"][0] < got["b1"][0]
    assert [m for m, (k, _, _) in got.items() if k == got["c urgent"][0]] == ["c urgent"]
    # Run A's waited for run A's earlier append: its events keep their queue order.
    assert got["a1"][1] < got["a urgent"][1]
    assert got["a1"][2] < got["a urgent"][2]
    # Run C's own later append came after it, and each run's seqs follow the queue.
    assert got["c urgent"][2] < got["c2"][2]
    assert w.lifted == 1
    assert (w.strayed, w.reordered) == (0, 0)


def _answer(run_id: str) -> Callable[[Tx], Awaitable[dict[str, Any]]]:
    """The job an operator's answer runs (``services.approvals.resolve``), through the door."""

    async def job(tx: Tx) -> dict[str, Any]:
        return await approval_door.resolve(
            tx, f"apr_{run_id}", "approved", decided_by="operator", reason=None
        )

    return job


async def test_an_approvals_answer_overtakes_other_runs_writes_never_its_own_runs_earlier_job(
    writer: tuple[Writer, list[list[StoredEvent]]],
) -> None:
    """The answer's job reads and writes the approval, the run's count of pending approvals,
    the run row and its events: it passes other runs' appends and jobs, and waits for a job
    fenced on its own run (the agent's) queued before it."""
    w, batches = writer

    async def ask(tx: Tx) -> None:
        for run_id in ("run_a", "run_c"):
            await approval_door.open_approval(
                tx, approval_row(run_id, run_id), gate=False, status_reason="approval"
            )

    await w.run(ask)
    async with Held(w) as held:
        held.submit(w.append("run_b", _said("b1")))
        held.submit(_fenced("run_b", _job_of(w, "run_b", "b job")))
        held.submit(_fenced("run_a", _job_of(w, "run_a", "a job")))  # the agent's, first
        c_answer = held.submit(w.run(_answer("run_c"), urgent_for="run_c"))
        a_answer = held.submit(w.run(_answer("run_a"), urgent_for="run_a"))
        held.submit(w.append("run_a", _said("a2")))
        await held.release()
    assert ((await c_answer)["status"], (await a_answer)["status"]) == ("approved", "approved")
    got = _by_message(batches)
    resolved = {
        e.run_id: (k, e.id, e.seq)
        for k, batch in enumerate(batches)
        for e in batch
        if e.type == "approval.resolved"
    }
    # Run C's answer: committed alone, ahead of run B's append and job queued before it.
    assert resolved["run_c"][1] < min(got["b1"][1], got["b job"][1])
    assert {e.run_id for e in batches[resolved["run_c"][0]]} == {"run_c"}
    # Run A's answer waited for run A's job queued before it, and came before its later append.
    assert got["a job"][1] < resolved["run_a"][1] < got["a2"][1]
    assert got["a job"][2] < resolved["run_a"][2] < got["a2"][2]
    assert w.lifted == 1
    assert (w.strayed, w.reordered) == (0, 0)


async def test_an_urgent_job_keeps_its_place_behind_a_job_that_could_write_to_any_run(
    writer: tuple[Writer, list[list[StoredEvent]]],
) -> None:
    """A job with neither fence nor declared run (an API request's) may write to the urgent
    job's run: neither the urgent job nor anything after it passes it."""
    w, batches = writer
    async with Held(w) as held:
        held.submit(w.append("run_b", _said("b1")))
        held.submit(w.run(_emitting("run_c", "unfenced job")))
        c_urgent = held.submit(w.run(_emitting("run_c", "c urgent"), urgent_for="run_c"))
        a_urgent = held.submit(w.run(_emitting("run_a", "a urgent"), urgent_for="run_a"))
        await held.release()
    await asyncio.gather(c_urgent, a_urgent)
    got = _by_message(batches)
    order = sorted(got, key=lambda m: got[m][1])
    assert order.index("unfenced job") < order.index("c urgent")
    assert order.index("unfenced job") < order.index("a urgent")
    assert order.index("b1") < order.index("unfenced job")
    assert w.lifted == 0


async def test_an_urgent_job_cuts_a_running_batch_of_jobs_short_and_goes_next(
    writer: tuple[Writer, list[list[StoredEvent]]],
) -> None:
    """A batch of jobs takes no further item once an urgent job waits: the urgent job is
    committed before the jobs the batch had not run yet (fenced on other runs), which then
    have their turn."""
    w, batches = writer
    started = asyncio.Event()
    go = asyncio.Event()

    async def slow(tx: Tx) -> str:
        started.set()
        await asyncio.wait_for(go.wait(), 30)
        await tx.emit("run_b", _said("slow"))
        return "slow"

    first = asyncio.create_task(_fenced("run_b", lambda: w.run(slow)))
    later = [asyncio.create_task(_fenced("run_b", _job_of(w, "run_b", f"b{k}"))) for k in range(3)]
    await asyncio.wait_for(started.wait(), 30)  # the batch [slow, b0, b1, b2] is running slow
    urgent = asyncio.create_task(w.run(_emitting("run_a", "a urgent"), urgent_for="run_a"))
    for _ in range(5):
        await asyncio.sleep(0)
    go.set()
    await asyncio.wait_for(asyncio.gather(first, *later, urgent), 30)
    got = _by_message(batches)
    assert got["slow"][1] < got["a urgent"][1] < min(got[f"b{k}"][1] for k in range(3))
    assert [got[f"b{k}"][2] for k in range(3)] == sorted(got[f"b{k}"][2] for k in range(3))
    assert w.lifted == 1


async def test_after_commit_callbacks_run_after_the_commit_and_only_for_jobs_that_committed(
    writer: tuple[Writer, list[list[StoredEvent]]],
) -> None:
    w, batches = writer
    calls: list[tuple[str, int]] = []

    def job(name: str, *, fail: bool = False) -> Callable[[Tx], Awaitable[str]]:
        async def fn(tx: Tx) -> str:
            await tx.emit("run_a", _said(name))
            tx.after_commit(lambda: calls.append((name, len(batches))))
            if fail:
                raise ValueError(name)
            return name

        return fn

    async with Held(w) as held:
        ok = held.submit(w.run(job("kept")))
        bad = held.submit(w.run(job("failed", fail=True)))
        held.go.set()
        assert await asyncio.wait_for(ok, 30) == "kept"
        with pytest.raises(ValueError, match="failed"):
            await asyncio.wait_for(bad, 30)
    # Called once, after the batch holding its event was handed on, before the caller woke.
    assert [name for name, _ in calls] == ["kept"]
    kept_batch = _by_message(batches)["kept"][0]
    assert calls[0][1] == kept_batch + 1
