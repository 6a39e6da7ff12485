"""1,000 scripted runs on one server (issue 15): creation, list and stream latency, errors, and
what each live run costs the server in memory.

A real server process (``tests/support/server.py``: ``codeyard serve`` on a loopback port, its
own data directory, SQLite) with ``max_concurrent_runs`` at its ceiling (256, the setting's
upper bound) and the run-creation rate limit lifted. One repository; every run is the
``script`` provider saying something, sleeping ``--sleep`` seconds (so the runs are alive at
the same time) and saying something else, in its own git worktree, with the turn-end
checkpoint: the whole run life except a model.

Measured in one run of the benchmark:

- **create**: ``POST /api/runs`` request time, ``--in-flight`` requests at a time.
- **list**: ``GET /api/runs?limit=50`` request time, every 0.5 s while the runs go.
- **stream**: ``--watchers`` clients, each following one run's SSE stream from its start; for
  each event written after the client connected, receipt time minus the event's ``ts`` (the
  server's clock when the writer numbered it; same machine; millisecond resolution).
- **errors**: runs not ending in ``review``; requests that failed.
- **memory**: the server's RSS idle (after start-up and the background router loading) and
  sampled every 0.5 s; per live run = (peak - idle) / the most runs live at once (``running``
  at the same sample). The script provider runs in the server's process: no agent process.

    .venv/bin/python bench/runs_scale.py [--runs 1000] [--sleep 20] [--watchers 100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench._common import OUT, Interference, fresh_dir, machine, make_repo, percentile, write_json
from tests.support.server import ServerProcess, open_sse

SLOTS = 256  # the ceiling of max_concurrent_runs (codeyard/config.py)
DONE = {"review", "completed", "failed", "cancelled", "interrupted"}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stats(values: list[float]) -> dict[str, float]:
    s = sorted(values)
    if not s:
        return {"n": 0}
    return {
        "n": len(s),
        "p50_ms": round(percentile(s, 50), 1),
        "p99_ms": round(percentile(s, 99), 1),
        "max_ms": round(s[-1], 1),
    }


def ts_seconds(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


async def watch(client: httpx.AsyncClient, run: str, out: list[float], stop: asyncio.Event) -> None:
    """Follow one run; latencies of events written after the stream opened."""
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
                out.append((seen - ts) * 1000)
            if event.get("type") == "run.status" and event.get("data", {}).get("to") in DONE:
                return
            if stop.is_set():
                return


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    base = fresh_dir("runs_scale")
    repo = make_repo(base / "repo")
    env = {
        "CODEYARD_MAX_CONCURRENT_RUNS": str(SLOTS),
        "CODEYARD_RUN_CREATE_PER_MINUTE": "1000000",
        "CODEYARD_MAX_STREAMS_PER_USER": "10000",
    }
    server = ServerProcess(base / "data", env=env)
    server.start(timeout=60)
    try:
        await asyncio.sleep(3)  # routers load in the background ~1 s after start-up
        idle_rss = rss_mb(server.pid)
        cpu0 = cpu_s(server.pid)
        steps = [{"say": "start"}, {"sleep": args.sleep}, {"say": "done"}]
        body = {
            "prompt": "scale",
            "repo_path": str(repo),
            "provider": "script",
            "agent_options": {"scenario": {"steps": steps}},
        }
        limits = httpx.Limits(max_connections=args.watchers + args.in_flight + 10)
        create_ms: list[float] = []
        list_ms: list[float] = []
        sse_ms: list[float] = []
        samples: list[dict[str, float]] = []
        request_errors: list[str] = []
        stop = asyncio.Event()
        interference = Interference()
        interference.start()
        t0 = time.monotonic()
        async with (
            server.client(timeout=120) as api,
            httpx.AsyncClient(
                base_url=server.url,
                headers={"Authorization": f"Bearer {server.token}"},
                timeout=httpx.Timeout(120, read=None),
                limits=limits,
            ) as sse,
        ):

            async def sample() -> None:
                while not stop.is_set():
                    t = time.perf_counter()
                    r = await api.get("/api/runs", params={"limit": 50})
                    list_ms.append((time.perf_counter() - t) * 1000)
                    if r.status_code != 200:
                        request_errors.append(f"list {r.status_code}")
                    live = await api.get(
                        "/api/runs", params={"status": "running", "limit": SLOTS + 1}
                    )
                    samples.append(
                        {
                            "t": time.monotonic() - t0,
                            "rss_mb": rss_mb(server.pid),
                            "live": len(live.json()["data"]),
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
                    r = await api.post("/api/runs", json=body)
                    create_ms.append((time.perf_counter() - t) * 1000)
                if r.status_code != 201:
                    request_errors.append(f"create {r.status_code}: {r.text[:200]}")
                    return
                run = r.json()["id"]
                run_ids.append(run)
                if k % max(1, args.runs // args.watchers) == 0 and len(watchers) < args.watchers:
                    watchers.append(asyncio.create_task(watch(sse, run, sse_ms, stop)))

            await asyncio.gather(*(create(k) for k in range(args.runs)))
            created_s = time.monotonic() - t0
            deadline = time.monotonic() + args.deadline
            final: dict[str, str] = {}
            while time.monotonic() < deadline:
                final = {}
                cursor: str | None = None
                while True:
                    params: dict[str, Any] = {"limit": 200}
                    if cursor:
                        params["cursor"] = cursor
                    page = (await api.get("/api/runs", params=params)).json()
                    final.update({r["id"]: r["status"] for r in page["data"]})
                    cursor = page["next_cursor"]
                    if not cursor:
                        break
                if all(final.get(r) in DONE for r in run_ids):
                    break
                await asyncio.sleep(2)
            done_s = time.monotonic() - t0
            stop.set()
            await asyncio.wait_for(sampler, 30)
            for task in watchers:
                task.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
        foreign = interference.stop()
        cpu = cpu_s(server.pid) - cpu0
        peak = max(samples, key=lambda s: s["rss_mb"])
        most_live = max(s["live"] for s in samples)
        not_review = [f"{r}: {final.get(r)}" for r in run_ids if final.get(r) != "review"]
        return {
            "machine": machine(),
            "runs": args.runs,
            "slots": SLOTS,
            "sleep_s": args.sleep,
            "watchers": len(watchers),
            "created_in_s": round(created_s, 1),
            "all_done_in_s": round(done_s, 1),
            "runs_per_s": round(args.runs / done_s, 2),
            "create": stats(create_ms),
            "list": stats(list_ms),
            "sse": stats(sse_ms),
            "request_errors": request_errors[:20],
            "request_error_count": len(request_errors),
            "runs_not_in_review": len(not_review),
            "not_in_review_examples": not_review[:10],
            "idle_rss_mb": round(idle_rss, 1),
            "peak_rss_mb": round(peak["rss_mb"], 1),
            "most_live": most_live,
            "mb_per_live_run": round((peak["rss_mb"] - idle_rss) / max(1, most_live), 3),
            "final_rss_mb": round(samples[-1]["rss_mb"], 1),
            "server_cpu_s": round(cpu, 1),
            "server_cpu_ms_per_run": round(cpu * 1000 / args.runs, 1),
            "foreign_cpu": round(foreign, 3),
            "rss_samples": samples[:: max(1, len(samples) // 60)],
            "median_live": statistics.median(s["live"] for s in samples),
        }
    finally:
        server.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--sleep", type=float, default=20.0, help="seconds each run stays alive")
    ap.add_argument("--watchers", type=int, default=100)
    ap.add_argument("--in-flight", type=int, default=32, help="create requests at a time")
    ap.add_argument("--deadline", type=float, default=1800, help="seconds for all to finish")
    ap.add_argument("--json", type=Path, default=OUT / "runs_scale.json")
    args = ap.parse_args()
    result = asyncio.run(bench(args))
    write_json(args.json, result)
    shown = {k: v for k, v in result.items() if k not in ("machine", "rss_samples")}
    print(shown)


if __name__ == "__main__":
    main()
