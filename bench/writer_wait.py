"""What an operator's write (an approval's resolve: ``Writer.run(job)``) waits on while N agents
stream events through the same writer (issue 15 target 3, the resolve request's part).

In one process, on SQLite: ``--agents`` tasks each append one ``agent.delta`` every
1/``--rate`` s to their own run; meanwhile a probe submits a small job (``SELECT 1`` in the
batch's transaction, as a resolve's job reads and writes a row) every 50 ms, another probe
appends one event, and a third measures the event loop's lag (a 10 ms sleep's lateness).
p50/p99 of each over ``--seconds``. A job that waits exactly as long as an append waits for
the batch in flight and the next one, which takes everything queued: putting it first in the
queue would not shorten that.

    .venv/bin/python bench/writer_wait.py [--agents 60] [--rate 5] [--seconds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text

from bench.ingest import PROJECT_ID, run_values
from codeyard.domain.events import AgentDelta, utc_now
from codeyard.store import projects, runs
from codeyard.store.db import create_engine, migrate
from codeyard.store.writer import Tx, Writer


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))]


async def measure(agents: int, rate: float, seconds: float) -> None:
    folder = Path(tempfile.mkdtemp(prefix="writer-wait-"))
    engine = create_engine(f"sqlite+aiosqlite:///{folder / 'codeyard.db'}")
    await migrate(engine)
    writer = Writer(engine, lambda _e: None)
    await writer.start()

    async def setup(tx: Tx) -> None:
        now = utc_now()
        project = {"id": PROJECT_ID, "name": "b", "slug": "b", "created_at": now}
        await projects.insert_project(tx, {**project, "updated_at": now})
        for i in range(agents):
            await runs.insert(tx, {**run_values(), "id": f"run_{i}", "number": i + 1})

    await writer.run(setup)
    stop = False
    lag: list[float] = []
    job_ms: list[float] = []
    append_ms: list[float] = []

    async def agent(i: int) -> None:
        while not stop:
            await writer.append(f"run_{i}", [AgentDelta(message_id="m", text="x" * 80)])
            await asyncio.sleep(1 / rate)

    async def loop_lag() -> None:
        while not stop:
            start = time.perf_counter()
            await asyncio.sleep(0.01)
            lag.append((time.perf_counter() - start - 0.01) * 1000)

    async def job(tx: Tx) -> None:
        await tx.conn.execute(text("SELECT 1"))

    async def probe_job() -> None:
        while not stop:
            start = time.perf_counter()
            await writer.run(job)
            job_ms.append((time.perf_counter() - start) * 1000)
            await asyncio.sleep(0.05)

    async def probe_append() -> None:
        while not stop:
            start = time.perf_counter()
            await writer.append("run_0", [AgentDelta(message_id="m", text="y")])
            append_ms.append((time.perf_counter() - start) * 1000)
            await asyncio.sleep(0.05)

    tasks = [asyncio.create_task(agent(i)) for i in range(agents)]
    tasks += [asyncio.create_task(f()) for f in (loop_lag, probe_job, probe_append)]
    await asyncio.sleep(seconds)
    stop = True
    await asyncio.gather(*tasks)
    await writer.stop()
    await engine.dispose()
    print(f"{agents} agents x {rate:g} events/s, {writer.batches} batches in {seconds:g} s")
    print("| what | p50 ms | p99 ms | n |")
    print("|---|---|---|---|")
    for name, xs in (("event loop lag", lag), ("job (resolve)", job_ms), ("append", append_ms)):
        print(f"| {name} | {statistics.median(xs):.2f} | {_pct(xs, 0.99):.2f} | {len(xs)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=60)
    parser.add_argument("--rate", type=float, default=5.0, help="events/s per agent")
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    asyncio.run(measure(args.agents, args.rate, args.seconds))


if __name__ == "__main__":
    main()
