"""Analytics over 1,000,000 usage events (issue 17; target: overview and by-model p99 < 150 ms).

A fresh database from the project's migrations gets 10,000 runs spread over 90 days and 100
``usage`` events per run (1,000,000 in all, inserted straight into ``events`` with the writer's
row shape and timestamps inside each run's hour; six models, three providers, three projects,
four repositories). The real rollup consumer (``codeyard.analytics.rollup.Rollup``) then folds
the log into ``usage_hourly`` through the writer, and the real routes are timed through the
ASGI app over httpx: ``/api/analytics/overview`` and ``/api/analytics/models`` for
``range=30d`` and ``range=all`` (the answer includes the run statistics read from ``runs``).

    .venv/bin/python bench/analytics.py [--events 1000000] [--postgres] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from sqlalchemy import func, select

from bench._common import OUT as BENCH_OUT
from bench._common import Interference, fresh_dir, machine, percentile
from bench._common import write_json as save_json
from bench._stats import percentiles
from codeyard.app import create_app
from codeyard.config import Settings
from codeyard.store import schema

TOKEN = "cy_bench_token"
MODELS = [
    ("claude-code", "claude-sonnet-4-5"),
    ("claude-code", "claude-opus-4-1"),
    ("codex", "gpt-5-codex"),
    ("codex", "gpt-5"),
    ("gemini", "gemini-2.5-pro"),
    ("gemini", "gemini-2.5-flash"),
]
TARGET_MS = 150.0


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


async def fill(app: Any, events: int, per_run: int) -> dict[str, float]:
    svc = app.state.services
    n_runs = events // per_run
    rnd = random.Random(17)
    now = datetime.now(UTC)
    runs, rows = [], []
    next_id = 1
    for i in range(n_runs):
        provider, model = MODELS[i % len(MODELS)]
        start = now - timedelta(seconds=rnd.uniform(0, 90 * 86400))
        run_id = f"run_bench{i:08d}"
        stamp = iso(start)
        runs.append(
            {
                "id": run_id,
                "number": i + 1,
                "title": f"bench {i}",
                "prompt": "p",
                "project_id": f"prj_{i % 3}",
                "repo_ids": [f"repo_{i % 4}"],
                "provider": provider,
                "model": model,
                "agent_options": {},
                "status": "completed",
                "source_ref": "HEAD",
                "base_commits": {},
                "worktrees": {},
                "agent_state": {},
                "turns": 3,
                "usage": {},
                "pending_approvals": 0,
                "pending_messages": [],
                "diff_stats": {},
                "archived": False,
                "labels": [],
                "last_seq": per_run,
                "created_at": stamp,
                "started_at": stamp,
                "finished_at": iso(start + timedelta(minutes=20)),
                "run_seconds": 1200.0,  # written with finished_at by store.runs.set_status
                "updated_at": stamp,
            }
        )
        for k in range(per_run):
            ts = iso(start + timedelta(seconds=k * 10))
            data = {
                "input_tokens": rnd.randint(50, 5000),
                "output_tokens": rnd.randint(10, 800),
                "cache_read_tokens": rnd.randint(0, 20000),
                "cache_write_tokens": rnd.randint(0, 500),
                "cost_usd": None,
                "cost_source": None,
                "model": model,
            }
            rows.append((next_id, run_id, f"prj_{i % 3}", k + 1, "usage", ts, json.dumps(data)))
            next_id += 1
    t0 = time.perf_counter()
    async with svc.engine.begin() as conn:
        await conn.execute(schema.runs.insert(), runs)
        dialect = conn.dialect.paramstyle
        marks = ", ".join(["?"] * 7) if dialect == "qmark" else ", ".join(["%s"] * 7)
        if conn.dialect.name == "postgresql":
            marks = ", ".join(f"${i}" for i in range(1, 8))
        sql = f"INSERT INTO events (id, run_id, project_id, seq, type, ts, data) VALUES ({marks})"
        for start_i in range(0, len(rows), 50_000):
            await conn.exec_driver_sql(sql, rows[start_i : start_i + 50_000])
    inserted = time.perf_counter() - t0
    rollup = app.state.subscribers.rollup
    t0 = time.perf_counter()
    await rollup.catch_up()
    rolled = time.perf_counter() - t0
    async with svc.engine.connect() as conn:
        hourly = (
            await conn.execute(select(func.count()).select_from(schema.usage_hourly))
        ).scalar()
    return {
        "runs": n_runs,
        "insert_s": round(inserted, 2),
        "rollup_s": round(rolled, 2),
        "rollup_events_per_s": round(events / rolled),
        "usage_hourly_rows": int(hourly or 0),
    }


async def time_route(client: httpx.AsyncClient, path: str, n: int) -> dict[str, Any]:
    for _ in range(5):  # warm-up
        assert (await client.get(path)).status_code == 200
    meter = Interference()
    meter.start()
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        resp = await client.get(path)
        samples.append((time.perf_counter() - t0) * 1000)
        assert resp.status_code == 200, resp.text
    foreign = meter.stop()
    s = sorted(samples)
    return {
        "path": path,
        "n": n,
        "foreign_cpu": round(foreign, 2),
        "loadavg_1m": round(os.getloadavg()[0], 1),
        **percentiles(s, (50, 99), 2),
        "met": percentile(s, 99) < TARGET_MS,
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    data_dir = BENCH_OUT / "analytics"
    if not (args.reuse and (data_dir / "codeyard.db").exists()):
        data_dir = fresh_dir("analytics")
    url = None
    cluster = None
    if args.postgres:
        from codeyard.testing.postgres import PostgresCluster

        cluster = PostgresCluster()
        cluster.__enter__()
        url = cluster.create_database()
    settings = Settings(data_dir=data_dir, admin_token=TOKEN, database_url=url)
    app = create_app(settings)
    try:
        async with app.router.lifespan_context(app):
            await app.state.subscribers.rollup.stop()  # the bench drives the rollup itself
            if args.reuse and data_dir.joinpath("filled.json").exists():
                filled = json.loads(data_dir.joinpath("filled.json").read_text())
            else:
                filled = await fill(app, args.events, 100)
                data_dir.joinpath("filled.json").write_text(json.dumps(filled))
            # Sanity: the rollup's totals equal a direct sum over the raw events.
            async with app.state.services.engine.connect() as conn:
                direct = (
                    await conn.execute(
                        select(func.count())
                        .select_from(schema.events)
                        .where(schema.events.c.type == "usage")
                    )
                ).scalar()
            transport = httpx.ASGITransport(app=app)
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with httpx.AsyncClient(
                transport=transport, base_url="http://127.0.0.1", headers=headers
            ) as client:
                resp = await client.get("/api/analytics/overview?range=all")
                assert resp.status_code == 200, resp.text
                total = resp.json()
                assert total["usage_events"] == direct == args.events, (total, direct)
                results = [
                    await time_route(client, p, args.samples)
                    for p in (
                        "/api/analytics/overview?range=30d",
                        "/api/analytics/overview?range=all",
                        "/api/analytics/models?range=30d",
                        "/api/analytics/models?range=all",
                        "/api/analytics/overview?range=30d&model=gpt-5&tz=Europe/Paris",
                    )
                ]
    finally:
        if cluster is not None:
            cluster.__exit__(None, None, None)
    return {
        "machine": machine(),
        "database": "postgresql" if args.postgres else "sqlite",
        "events": args.events,
        **filled,
        "routes": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument(
        "--reuse", action="store_true", help="time the routes on the last run's data (SQLite)"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    out = asyncio.run(main_async(args))
    print(json.dumps(out, indent=2))
    if args.json:
        save_json(args.json, out)


if __name__ == "__main__":
    main()
