"""The writer's urgent lane in one process (issue 15, target 3): how long an approval-like job
waits behind many runs' appends, taken ahead (``urgent_for``) or in queue order, interleaved.

One ``Writer`` on a SQLite file (the project's migrations), ``--runs`` runs, each with a task
that appends an event every ``--every`` seconds (agent output) and, every ``--job-every``
appends, writes a small job fenced on its run (a tool call's bookkeeping). ``--busy`` of the
event loop's time goes to other work in 1 ms slices (a server's requests and streams), so each
of a job's hops waits behind some of it. Every ``--probe-every`` seconds a probe job for one of
10 runs with no output (their agents wait on an answer) is submitted, alternately urgent and
not (``--in-order``: never urgent, to see what the lane costs the appends); it reads its run's
row, writes an event and counts the run's approvals, as an approval's answer does. Both kinds
run under the same load at the same time, so their difference is the lane's. Reported per
kind, p50 / p99 (ms):

- ``queued``: submitted → the job starts running (the wait in the writer's queue);
- ``to_commit``: the job's start → its caller woken after the commit (the rest of its batch,
  the commit, the wake-up);
- ``total``: submitted → caller woken;

and the appends' own submit → return.

    .venv/bin/python bench/writer_lane.py [--runs 60] [--seconds 20] [--job-every 1] [--in-order]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select

from bench._common import OUT, fresh_dir, machine, percentile, write_json
from codeyard.domain import events as ev
from codeyard.store import fencing, runs, schema
from codeyard.store.db import create_engine, migrate
from codeyard.store.writer import Tx, Writer
from tests.support.writer_runs import add_runs


def summary(values: list[float]) -> dict[str, float]:
    s = sorted(values)
    return {
        "n": len(s),
        "p50_ms": round(percentile(s, 50), 2),
        "p99_ms": round(percentile(s, 99), 2),
        "max_ms": round(s[-1], 2) if s else float("nan"),
    }


async def agent(
    w: Writer, run_id: str, every: float, job_every: int, stop: asyncio.Event, appends: list[float]
) -> None:
    """One run's output: appends, and now and then a small job fenced on the run."""
    fencing.current.set(fencing.Fence(run_id, 0))
    await asyncio.sleep(random.random() * every)
    k = 0
    while not stop.is_set():
        k += 1
        before = time.perf_counter()
        await w.append(run_id, [ev.ErrorEvent(message=f"out {k}")])
        appends.append((time.perf_counter() - before) * 1000)
        if k % job_every == 0:

            async def bookkeeping(tx: Tx, k: int = k) -> None:
                await runs.lock(tx, run_id)
                await tx.emit(run_id, [ev.ErrorEvent(message=f"job {k}")])

            await w.run(bookkeeping)
        await asyncio.sleep(every)


async def busy(share: float, stop: asyncio.Event) -> None:
    """The rest of a server's loop (requests, streams, the agents' messages): ``share`` of its
    time spent in 1 ms slices, so each of a job's hops waits behind some of them."""
    while not stop.is_set():
        end = time.perf_counter() + 0.001
        while time.perf_counter() < end:
            pass
        await asyncio.sleep(0.001 * (1 - share) / share)


async def probe(w: Writer, run_id: str, urgent: bool) -> dict[str, float]:
    """An approval's answer: its run read, an event written, the approvals counted."""
    started: list[float] = []

    async def answer(tx: Tx) -> None:
        started.append(time.perf_counter())
        await runs.lock(tx, run_id)
        await tx.emit(run_id, [ev.ErrorEvent(message="answer")])
        AP = schema.approvals
        await tx.conn.execute(select(func.count()).select_from(AP).where(AP.c.run_id == run_id))

    submitted = time.perf_counter()
    await w.run(answer, urgent_for=run_id if urgent else None)
    woken = time.perf_counter()
    return {
        "queued": (started[0] - submitted) * 1000,
        "to_commit": (woken - started[0]) * 1000,
        "total": (woken - submitted) * 1000,
    }


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    root = fresh_dir("writer_lane")
    engine = create_engine(f"sqlite+aiosqlite:///{root / 'codeyard.db'}")
    await migrate(engine)
    w = Writer(engine, lambda _events: None)
    await w.start()
    ids = [f"run_{k:04d}" for k in range(args.runs)]
    waiting = [f"wait_{k:04d}" for k in range(10)]  # agents waiting on an answer: no output
    await add_runs(w, *ids, *waiting)
    stop = asyncio.Event()
    appends: list[float] = []
    tasks = [
        asyncio.create_task(agent(w, r, args.every, args.job_every, stop, appends)) for r in ids
    ]
    tasks += [
        asyncio.create_task(busy(args.busy / args.busy_tasks, stop)) for _ in range(args.busy_tasks)
    ]
    probes: dict[bool, list[dict[str, float]]] = {True: [], False: []}
    await asyncio.sleep(1.0)  # the agents under way
    appends.clear()
    end = time.monotonic() + args.seconds
    urgent = False
    while time.monotonic() < end:
        urgent = not urgent and not args.in_order
        probes[urgent].append(await probe(w, random.choice(waiting), urgent))
        await asyncio.sleep(args.probe_every)
    stop.set()
    await asyncio.gather(*tasks)
    await w.stop()
    await engine.dispose()
    out: dict[str, Any] = {
        "machine": machine(),
        "args": vars(args) | {"json": str(args.json)},
        "batches": w.batches,
        "lifted": w.lifted,
        "appends": summary(appends),
    }
    for kind, rows in (("urgent", probes[True]), ("in_order", probes[False])):
        if rows:
            out[kind] = {part: summary([r[part] for r in rows]) for part in rows[0]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=60)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--every", type=float, default=0.02, help="seconds between a run's appends")
    ap.add_argument("--job-every", type=int, default=10, help="appends between a run's jobs")
    ap.add_argument("--probe-every", type=float, default=0.05)
    ap.add_argument("--busy", type=float, default=0.5, help="share of the loop kept busy")
    ap.add_argument("--busy-tasks", type=int, default=20, help="tasks it is spread over")
    ap.add_argument("--in-order", action="store_true", help="no probe is urgent")
    ap.add_argument("--json", type=Path, default=OUT / "writer_lane.json")
    args = ap.parse_args()
    result = asyncio.run(bench(args))
    write_json(args.json, result)
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1))


if __name__ == "__main__":
    main()
