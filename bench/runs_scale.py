"""1,000 scripted runs on one server (issue 15): creation, list and stream latency, errors, and
what each live run costs the server in memory.

A real server process (``tests/support/server.py``: ``codeyard serve`` on a loopback port, its
own data directory, SQLite) with ``max_concurrent_runs`` = ``--slots`` (default: every run, so
all are alive at once) and the run-creation rate limit lifted. ``--repos`` repositories (runs
spread round-robin; worktree operations on one repository are serialized); every run is the
``script`` provider saying something, sleeping ``--sleep`` seconds (so the runs are alive at
the same time) and saying something else, in its own git worktree, with the turn-end
checkpoint: the whole run life except a model.

Measured in one run of the benchmark:

- **create**: ``POST /api/runs`` request time, ``--in-flight`` requests at a time.
- **list**: ``GET /api/runs?limit=50`` request time, every 0.5 s while the runs go.
- **stream**: ``--watchers`` clients, each following one run's SSE stream from its start; for
  each event written after the client connected, receipt time minus the event's ``ts`` (the
  server's clock when the writer numbered it; same machine; millisecond resolution). Split by
  what the server was doing when the event was written: preparing runs (``git worktree add``
  and the first snapshot), finishing them (turn-end checkpoints), or neither.
- **errors**: runs not ending in ``review``; requests that failed.
- **memory**: the server's RSS idle (after start-up and the background router loading) and
  sampled every 0.5 s; per live run = (peak - idle) / the most runs live at once (``running``
  at the same sample; counted in the database, read-only, so counting costs the server
  nothing). The script provider runs in the server's process: no agent process.
- **queue**: the most runs ``preparing`` at once and when every run was first ``running``
  together: with one repository, preparation is serialized per repository.
- **loop**: the server's event-loop lag (a 10 ms sleep's lateness, measured in the server,
  by phase as above) and its garbage collections of ≥ 1 ms by generation
  (``bench/_loop_lag.py``, through ``bench/_timed_server.py``).

    .venv/bin/python bench/runs_scale.py [--runs 1000] [--sleep 60] [--watchers 100]
        [--repos 1] [--slots RUNS]

One command for an idle machine in < 5 min: ``--runs 1000 --sleep 60 --watchers 100`` (see
bench/RESULTS.md for its measured duration).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import os
import resource
import sqlite3
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench import _loop_lag
from bench._common import (
    OUT,
    PY,
    Interference,
    fresh_dir,
    machine,
    make_repo,
    write_json,
)
from bench._proctree import cpu_s, rss_mb
from bench._stats import summary
from tests.support.server import ServerProcess, open_sse

DONE = {"review", "completed", "failed", "cancelled", "interrupted"}


def ts_seconds(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def status_counts(db: Path) -> dict[str, int]:
    """Runs per status, read from the server's SQLite file (WAL: a reader never blocks it)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        rows = conn.execute("SELECT status, count(*) FROM runs GROUP BY status").fetchall()
    return {str(k): int(v) for k, v in rows}


async def settled(pid: int, quiet: float = 0.05, at_most: float = 60) -> None:
    """Wait (at least 3 s) until the server's start-up work is over: the routers it loads in the
    background after start-up (~1 s on an idle machine, many seconds on a busy one, holding the
    event loop while each imports) would otherwise fall into the creation burst. Over when the
    server used less than ``quiet`` of a core in the last second."""
    await asyncio.sleep(3)
    deadline = time.monotonic() + at_most
    before = cpu_s(pid)
    while time.monotonic() < deadline:
        await asyncio.sleep(1)
        now = cpu_s(pid)
        if now - before < quiet:
            return
        before = now


def raise_nofile(want: int) -> int:
    """This process holds ``--watchers`` + ``--in-flight`` sockets: lift its soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        soft = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


async def watch(
    client: httpx.AsyncClient, run: str, out: list[tuple[float, float]], stop: asyncio.Event
) -> None:
    """Follow one run; (written at, latency ms) of events written after the stream opened."""
    opened = time.time()
    path = f"/api/runs/{run}/events/stream"
    async with open_sse(client, path, params={"after": 0}) as stream:
        async for frame in stream.frames():
            seen = time.time()
            event = frame.json()
            if not isinstance(event, dict) or "ts" not in event:
                continue
            ts = ts_seconds(event["ts"])
            if ts >= opened:
                out.append((ts, (seen - ts) * 1000))
            if event.get("type") == "run.status" and event.get("data", {}).get("to") in DONE:
                return
            if stop.is_set():
                return


def phase_of(samples: list[dict[str, float]], wall: float) -> str:
    """What the server was doing when an event was written at wall-clock time ``wall``: between
    the samples around it, were runs waiting for or in preparation, or reaching ``review``
    (their turn-end checkpoint), or neither."""
    times = [x["wall"] for x in samples]
    k = bisect.bisect_right(times, wall) - 1
    if k < 0 or k + 1 >= len(samples):
        return "preparing" if k < 0 else "finishing"
    before, after = samples[k], samples[k + 1]
    if before["preparing"] or before["queued"] or after["preparing"] or after["queued"]:
        return "preparing"
    if after["review"] > before["review"]:
        return "finishing"
    return "steady"


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    base = fresh_dir("runs_scale")
    repos = [make_repo(base / f"repo{k}") for k in range(args.repos)]
    slots = args.slots or args.runs
    nofile = raise_nofile(args.watchers + args.in_flight + 256)
    env = {
        "CODEYARD_MAX_CONCURRENT_RUNS": str(slots),
        "CODEYARD_RUN_CREATE_PER_MINUTE": "1000000",
        "CODEYARD_MAX_STREAMS_PER_USER": "10000",
    }
    loop_file = base / "loop.log"
    env["BENCH_LOOP_FILE"] = str(loop_file)
    wrap = [PY, str(Path(__file__).resolve().parent / "_timed_server.py")]
    server = ServerProcess(base / "data", env=env, wrap=wrap)
    server.start(timeout=60)
    db = base / "data" / "codeyard.db"
    try:
        await settled(server.pid)  # the routers load in the background after start-up
        idle_rss = rss_mb(server.pid)
        server_nofile = Path(f"/proc/{server.pid}/limits").read_text()
        cpu0 = cpu_s(server.pid)
        steps = [{"say": "start"}, {"sleep": args.sleep}, {"say": "done"}]

        def body(k: int) -> dict[str, Any]:
            return {
                "prompt": "scale",
                "repo_path": str(repos[k % len(repos)]),
                "provider": "script",
                "agent_options": {"scenario": {"steps": steps}},
            }

        limits = httpx.Limits(max_connections=args.watchers + args.in_flight + 10)
        create_ms: list[float] = []
        list_ms: list[float] = []
        sse: list[tuple[float, float]] = []
        samples: list[dict[str, float]] = []
        request_errors: list[str] = []
        stop = asyncio.Event()
        interference = Interference()
        interference.start()
        t0, wall0 = time.monotonic(), time.time()
        async with (
            server.client(timeout=120) as api,
            httpx.AsyncClient(
                base_url=server.url,
                headers={"Authorization": f"Bearer {server.token}"},
                timeout=httpx.Timeout(120, read=None),
                limits=limits,
            ) as sse_client,
        ):

            async def sample() -> None:
                while not stop.is_set():
                    t = time.perf_counter()
                    r = await api.get("/api/runs", params={"limit": 50})
                    list_ms.append((time.perf_counter() - t) * 1000)
                    if r.status_code != 200:
                        request_errors.append(f"list {r.status_code}")
                    counts = await asyncio.to_thread(status_counts, db)
                    samples.append(
                        {
                            "t": round(time.monotonic() - t0, 2),
                            "wall": time.time(),
                            "rss_mb": round(rss_mb(server.pid), 1),
                            "live": counts.get("running", 0),
                            "queued": counts.get("queued", 0),
                            "preparing": counts.get("preparing", 0),
                            "review": counts.get("review", 0),
                        }
                    )
                    await asyncio.sleep(0.5)

            sampler = asyncio.create_task(sample())
            gate = asyncio.Semaphore(args.in_flight)
            run_ids: list[str] = []
            watchers: list[asyncio.Task[None]] = []

            async def create(k: int) -> None:
                async with gate:
                    t = time.perf_counter()
                    r = await api.post("/api/runs", json=body(k))
                    create_ms.append((time.perf_counter() - t) * 1000)
                if r.status_code != 201:
                    request_errors.append(f"create {r.status_code}: {r.text[:200]}")
                    return
                run = r.json()["id"]
                run_ids.append(run)
                if k % max(1, args.runs // args.watchers) == 0 and len(watchers) < args.watchers:
                    watchers.append(asyncio.create_task(watch(sse_client, run, sse, stop)))

            await asyncio.gather(*(create(k) for k in range(args.runs)))
            created_s = time.monotonic() - t0
            deadline = time.monotonic() + args.deadline
            while time.monotonic() < deadline:
                counts = await asyncio.to_thread(status_counts, db)
                if sum(counts.get(s, 0) for s in DONE) >= len(run_ids):
                    break
                await asyncio.sleep(1)
            done_s = time.monotonic() - t0
            stop.set()
            await asyncio.wait_for(sampler, 30)
            for task in watchers:
                task.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
            final: dict[str, str] = {}
            cursor: str | None = None
            while True:
                params: dict[str, Any] = {"limit": 500}
                if cursor:
                    params["cursor"] = cursor
                page = (await api.get("/api/runs", params=params)).json()
                final.update({r["id"]: r["status"] for r in page["data"]})
                cursor = page["next_cursor"]
                if not cursor:
                    break
        foreign = interference.stop()
        cpu = cpu_s(server.pid) - cpu0
        await asyncio.sleep(2)
        settled_rss = rss_mb(server.pid)
    finally:
        server.stop()
    peak = max(samples, key=lambda x: x["rss_mb"])
    most_live = max(x["live"] for x in samples)
    all_live = next((x["t"] for x in samples if x["live"] >= args.runs), None)
    by_phase: dict[str, list[float]] = {"preparing": [], "steady": [], "finishing": []}
    for wall, ms in sse:
        by_phase[phase_of(samples, wall)].append(ms)
    not_review = [f"{r}: {final.get(r)}" for r in run_ids if final.get(r) != "review"]
    loop = _loop_lag.summary(loop_file, lambda wall: phase_of(samples, wall), since=wall0)
    return {
        "machine": machine(),
        "runs": args.runs,
        "slots": slots,
        "repos": args.repos,
        "sleep_s": args.sleep,
        "watchers": len(watchers),
        "bench_nofile_soft": nofile,
        "server_nofile": next(
            (line.split()[3:5] for line in server_nofile.splitlines() if "open files" in line),
            None,
        ),
        "created_in_s": round(created_s, 1),
        "all_live_at_s": all_live,
        "all_done_in_s": round(done_s, 1),
        "runs_per_s": round(args.runs / done_s, 2),
        "create": summary(create_ms),
        "list": summary(list_ms),
        "sse": summary([ms for _, ms in sse]),
        "sse_by_phase": {k: summary(v) for k, v in by_phase.items()},
        "loop": loop,
        "request_errors": request_errors[:20],
        "request_error_count": len(request_errors),
        "runs_not_in_review": len(not_review),
        "not_in_review_examples": not_review[:10],
        "idle_rss_mb": round(idle_rss, 1),
        "peak_rss_mb": round(peak["rss_mb"], 1),
        "most_live": most_live,
        "most_preparing": max(x["preparing"] for x in samples),
        "mb_per_live_run": round((peak["rss_mb"] - idle_rss) / max(1, most_live), 3),
        "final_rss_mb": round(settled_rss, 1),
        "retained_mb_per_run": round((settled_rss - idle_rss) / max(1, args.runs), 3),
        "server_cpu_s": round(cpu, 1),
        "server_cpu_ms_per_run": round(cpu * 1000 / args.runs, 1),
        "foreign_cpu": round(foreign, 3),
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "rss_samples": [
            {k: v for k, v in x.items() if k != "wall"}
            for x in samples[:: max(1, len(samples) // 60)]
        ],
        "median_live": statistics.median(x["live"] for x in samples),
    }


def table(r: dict[str, Any]) -> str:
    """The result as the Markdown table bench/RESULTS.md shows."""

    def ms(st: dict[str, float]) -> str:
        if not st.get("n"):
            return "—"
        return f"p50 {st['p50_ms']} ms, p99 {st['p99_ms']} ms, max {st['max_ms']} ms (n={st['n']})"

    rows = [
        ("runs / slots / repositories", f"{r['runs']} / {r['slots']} / {r['repos']}"),
        (
            "runs ending in `review` / failed requests",
            f"{r['runs'] - r['runs_not_in_review']} / {r['request_error_count']}",
        ),
        (
            "all created / all live at once / all finished",
            f"{r['created_in_s']} s / {r['all_live_at_s']} s / {r['all_done_in_s']} s",
        ),
        ("most runs `running` / `preparing` at once", f"{r['most_live']} / {r['most_preparing']}"),
        ("`POST /api/runs`", ms(r["create"])),
        ("`GET /api/runs?limit=50`", ms(r["list"])),
        (f"SSE, {r['watchers']} watchers, all events", ms(r["sse"])),
        *((f"SSE while {k}", ms(v)) for k, v in r["sse_by_phase"].items()),
        ("server loop lag (10 ms ticks)", ms(r["loop"]["lag"])),
        *((f"loop lag while {k}", ms(v)) for k, v in r["loop"]["lag_by_phase"].items()),
        *(
            (f"GC pauses ≥ 1 ms, {g}", f"{ms(v)}, total {v['total_ms']} ms")
            for g, v in r["loop"]["gc"].items()
        ),
        (
            "server RSS idle / peak / after",
            f"{r['idle_rss_mb']} / {r['peak_rss_mb']} / {r['final_rss_mb']} MB",
        ),
        ("MB per live run ((peak - idle) / most live)", str(r["mb_per_live_run"])),
        ("MB kept per finished run ((after - idle) / runs)", str(r["retained_mb_per_run"])),
        ("server CPU", f"{r['server_cpu_s']} s ({r['server_cpu_ms_per_run']} ms per run)"),
        ("foreign CPU / load average at the end", f"{r['foreign_cpu']} / {r['loadavg_end']}"),
    ]
    return "\n".join(["| figure | value |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--sleep", type=float, default=60.0, help="seconds each run stays alive")
    ap.add_argument("--watchers", type=int, default=100)
    ap.add_argument("--repos", type=int, default=1, help="repositories the runs spread over")
    ap.add_argument("--slots", type=int, default=0, help="max_concurrent_runs (0: --runs)")
    ap.add_argument("--in-flight", type=int, default=32, help="create requests at a time")
    ap.add_argument("--deadline", type=float, default=1800, help="seconds for all to finish")
    ap.add_argument("--json", type=Path, default=OUT / "runs_scale.json")
    args = ap.parse_args()
    result = asyncio.run(bench(args))
    write_json(args.json, result)
    shown = {k: v for k, v in result.items() if k not in ("machine", "rss_samples")}
    print(shown)
    print(table(result))


if __name__ == "__main__":
    main()
