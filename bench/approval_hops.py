"""One approval's path in one process (issue 15, target 3): its trips to other threads, its
commits, its CPU, and resolve → the asking decision woken, under an artificial CPU load.

The real parts on a SQLite file (the project's migrations): the ``Writer``, the executor's
``ApprovalGate.decide`` for a ``Write`` call in mode ``default`` (it asks), and
``services.approvals.resolve`` (what ``POST /api/approvals/{id}/resolve`` calls), with a small
stand-in for the executor's surface (``waiting_on``, ``deliver_now``: the local executor's
wake-up of the waiting future). Each approval goes through three phases, one at a time:

- ``ask``: ``decide`` → the approval committed and announced (the hub sees
  ``approval.requested``);
- ``resolve``: the answer's request → the asking ``decide`` returns (the agent's hook would
  write its answer in that step);
- ``close``: the answered approval marked used (``handle.closing``), which the run's next
  decision waits on, where the answer's own commit did not mark it.

Counted per phase: trips to a driver thread (calls into an aiosqlite connection's thread: the
writer's and the pool's), reads answered on the loop's own thread (``store.inline_reads``), and
the writer's commits. Timed: the process's CPU per approval (all threads) and the loop thread's,
with no load; and resolve → woken with ``--load`` busy processes at nice 10 (the agents) and
``--appenders`` runs appending an event every ``--every`` s through the same writer.

    .venv/bin/python bench/approval_hops.py [--approvals 200] [--load 8] [--appenders 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import fresh_dir, percentile
from codeyard.domain import events as ev
from codeyard.domain.events import StoredEvent, utc_now
from codeyard.domain.tools import ToolRequest
from codeyard.executor.approvals import ApprovalGate
from codeyard.executor.handle import RunHandle
from codeyard.executor.interface import ApprovalAnswer
from codeyard.services import approvals
from codeyard.store import inline_reads, projects, runs, sqlite_driver
from codeyard.store import settings as settings_store
from codeyard.store.db import create_engine, migrate
from codeyard.store.writer import Tx, Writer
from tests.support.writer_runs import PROJECT, run_row

COUNTS = {"trips": 0, "inline": 0}


def _count_trips() -> None:
    """Count every call into an aiosqlite connection's thread, and every inline read."""
    trip = sqlite_driver.LateBeginConnection._execute
    read = inline_reads.InlineReader.read

    async def counted_trip(self: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        COUNTS["trips"] += 1
        return await trip(self, fn, *args, **kwargs)

    def counted_read(self: Any, *args: Any, **kwargs: Any) -> Any:
        found = read(self, *args, **kwargs)
        COUNTS["inline"] += found is not None
        return found

    sqlite_driver.LateBeginConnection._execute = counted_trip  # type: ignore[method-assign]
    inline_reads.InlineReader.read = counted_read  # type: ignore[method-assign]


class Waiting:
    """The executor's surface ``services.approvals`` uses, as the local executor does it."""

    def __init__(self, handles: dict[str, RunHandle]) -> None:
        self.handles = handles

    def waiting_on(self, approval_id: str) -> str | None:
        for run_id, handle in self.handles.items():
            if approval_id in handle.approvals:
                return run_id
        return None

    def deliver_now(self, run_id: str, signal: Any) -> bool:
        assert isinstance(signal, ApprovalAnswer)
        future = self.handles[run_id].approvals.get(signal.approval_id)
        if future is None or future.done():
            return False
        future.set_result(dict(signal.answer))
        return True

    async def signal(self, run_id: str, signal: Any) -> bool:
        return self.deliver_now(run_id, signal)


def spin() -> None:
    os.nice(10)
    while True:
        pass


async def appender(w: Writer, run_id: str, every: float, stop: asyncio.Event) -> None:
    k = 0
    while not stop.is_set():
        k += 1
        await w.append(run_id, [ev.ErrorEvent(message=f"out {k}")])
        await asyncio.sleep(every)


class Phase:
    def __init__(self) -> None:
        self.trips: list[int] = []
        self.inline: list[int] = []
        self.commits: list[int] = []

    def add(self, before: tuple[int, int, int], after: tuple[int, int, int]) -> None:
        self.trips.append(after[0] - before[0])
        self.inline.append(after[1] - before[1])
        self.commits.append(after[2] - before[2])

    def summary(self) -> dict[str, float]:
        n = max(1, len(self.trips))
        return {
            "trips": round(sum(self.trips) / n, 2),
            "inline_reads": round(sum(self.inline) / n, 2),
            "commits": round(sum(self.commits) / n, 2),
        }


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    _count_trips()
    root = fresh_dir("approval_hops")
    engine = create_engine(f"sqlite+aiosqlite:///{root / 'codeyard.db'}")
    await migrate(engine)
    settings_store.hear_writes(engine)  # as the server does (``create_app``)
    announced: dict[str, asyncio.Event] = {}

    def on_commit(events: list[StoredEvent]) -> None:
        for e in events:
            if e.type == "approval.requested":
                announced.setdefault(e.run_id, asyncio.Event()).set()

    w = Writer(engine, on_commit)
    await w.start()
    asking = [f"run_{k:03d}" for k in range(10)]
    busy = [f"out_{k:03d}" for k in range(args.appenders)]

    async def add(tx: Tx) -> None:
        now = utc_now()
        await projects.insert_project(
            tx, {"id": PROJECT, "name": "p", "slug": "p", "created_at": now, "updated_at": now}
        )
        for k, run_id in enumerate(asking + busy):
            row = run_row(run_id, k + 1)
            row.update(status="running", started_at=now)
            await runs.insert(tx, row)

    await w.run(add)
    gate = ApprovalGate(engine, w, "default")
    handles = {r: RunHandle(r) for r in asking}
    svc: Any = SimpleNamespace(engine=engine, writer=w, executor=Waiting(handles))
    stop = asyncio.Event()
    tasks = [asyncio.create_task(appender(w, r, args.every, stop)) for r in busy]
    spinners = [multiprocessing.Process(target=spin, daemon=True) for _ in range(args.load)]
    for p in spinners:
        p.start()
    phases = {"ask": Phase(), "resolve": Phase(), "close": Phase()}
    woken: list[float] = []
    cpu: list[float] = []
    loop_cpu: list[float] = []

    def counts() -> tuple[int, int, int]:
        return COUNTS["trips"], COUNTS["inline"], w.batches

    try:
        await asyncio.sleep(0.5)
        for k in range(args.approvals + args.warmup):
            run_id = asking[k % len(asking)]
            handle = handles[run_id]
            request = ToolRequest(
                f"call_{k}", "Write", "edit", {"file_path": f"f{k}.txt", "content": "x"}
            )
            seen = announced.setdefault(run_id, asyncio.Event())
            seen.clear()
            c0, t0 = time.process_time(), time.thread_time()
            before = counts()
            answered: list[float] = []

            async def decide(
                handle: RunHandle = handle,
                request: ToolRequest = request,
                answered: list[float] = answered,
            ) -> None:
                await gate.decide(handle, request)
                answered.append(time.perf_counter())

            deciding = asyncio.ensure_future(decide())
            await seen.wait()
            asked = counts()
            (approval_id,) = handle.approvals
            start = time.perf_counter()
            await approvals.resolve(svc, approval_id, "approved", None, None)
            await deciding
            resolved = counts()
            closing, handle.closing = handle.closing, None
            if closing is not None:  # marking the answer used, if its commit did not
                await closing
            closed = counts()
            if k < args.warmup:
                continue
            cpu.append(time.process_time() - c0)
            loop_cpu.append(time.thread_time() - t0)
            woken.append((answered[0] - start) * 1000)
            phases["ask"].add(before, asked)
            phases["resolve"].add(asked, resolved)
            phases["close"].add(resolved, closed)
            if args.gap:
                await asyncio.sleep(args.gap)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        for p in spinners:
            p.kill()
        await w.stop()
        await engine.dispose()
    s = sorted(woken)
    return {
        "approvals": len(woken),
        "load": args.load,
        "appenders": args.appenders,
        "phases": {k: v.summary() for k, v in phases.items()},
        "cpu_ms_per_approval": round(sum(cpu) / len(cpu) * 1000, 3),
        "loop_cpu_ms_per_approval": round(sum(loop_cpu) / len(loop_cpu) * 1000, 3),
        "resolve_to_woken_ms": {
            "p50": round(percentile(s, 50), 2),
            "p90": round(percentile(s, 90), 2),
            "p99": round(percentile(s, 99), 2),
            "max": round(s[-1], 2),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--approvals", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--load", type=int, default=0, help="busy processes at nice 10")
    parser.add_argument("--appenders", type=int, default=0, help="runs appending events")
    parser.add_argument("--every", type=float, default=0.05, help="s between an appender's events")
    parser.add_argument("--gap", type=float, default=0.0, help="s between approvals")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop, as the server does")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        result = uvloop.run(bench(args))
    else:
        result = asyncio.run(bench(args))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
