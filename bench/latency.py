"""Delivery latency from append to receipt by SSE clients, with 1, 100 and 1,000 clients.

A real server process (``bench/server.py``: the app under Uvicorn) and separate client
processes (``bench/sse_clients.py``: many connections each; httpx by default) talk over
127.0.0.1. For each client count, a fresh draft run is created over the API, every client
connects to its SSE stream (the emitter waits until the hub reports all of them subscribed),
then the server appends ``count``
events at a steady ``rate`` through ``services.writer.append``, each stamped with ``time.time()``
just before the append. Latency = client's receipt time - that stamp: it includes the commit,
the hub, SSE framing, the socket and the client's parsing.

    .venv/bin/python bench/latency.py [--clients 1,100,1000] [--rate 20] [--count 200]
        [--impl httpx,httpx+uvloop,raw]

``raw`` is a minimal hand-written HTTP/1.1 client: it shows how much of the httpx numbers is the
measuring client's own cost when server and clients share two cores.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    BENCH,
    HOST,
    OUT,
    PY,
    TOKEN,
    free_port,
    fresh_dir,
    guarded,
    machine,
    make_repo,
    percentile,
    stop,
    wait_healthy,
    write_json,
)


def raise_nofile(want: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))


class Server:
    def __init__(self, name: str) -> None:
        self.dir = fresh_dir(name)
        self.port = free_port()
        self.log = (self.dir / "server.log").open("w")
        self.proc = subprocess.Popen(
            [
                PY,
                str(BENCH / "server.py"),
                "--port",
                str(self.port),
                "--data-dir",
                str(self.dir / "data"),
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_healthy(self.port, self.proc, 30)
        self.http = httpx.Client(
            base_url=f"http://{HOST}:{self.port}",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=120,
        )
        self.repo = make_repo(self.dir / "repo")

    def new_run(self) -> str:
        r = self.http.post(
            "/api/runs",
            json={
                "prompt": "bench",
                "repo_path": str(self.repo),
                "provider": "script",
                "draft": True,
                "agent_options": {"scenario": {"steps": [{"say": "hi"}]}},
            },
        )
        r.raise_for_status()
        return str(r.json()["id"])

    def stats(self) -> dict[str, Any]:
        return dict(self.http.get("/bench/stats").json())

    def close(self) -> None:
        self.http.close()
        stop(self.proc)
        self.log.close()


def measure(
    srv: Server,
    clients: int,
    procs: int,
    rate: float,
    count: int,
    impl: str = "httpx",
    uvloop: bool = False,
) -> dict[str, Any]:
    run_id = srv.new_run()
    before = srv.stats()
    outs = [srv.dir / f"clients-{clients}-{k}.json" for k in range(procs)]
    share = [clients // procs + (1 if k < clients % procs else 0) for k in range(procs)]
    deadline = count / rate + 60
    children = [
        subprocess.Popen(
            [
                PY,
                str(BENCH / "sse_clients.py"),
                "--port",
                str(srv.port),
                "--run",
                run_id,
                "--clients",
                str(n),
                "--after",
                str(before["last_id"]),
                "--expect",
                str(count),
                "--deadline",
                str(deadline),
                "--out",
                str(out),
                "--impl",
                impl,
                *(["--uvloop"] if uvloop else []),
                "--connect-parallel",
                "50",
            ]
        )
        for n, out in zip(share, outs, strict=True)
    ]
    t0 = time.monotonic()
    try:
        while srv.stats()["subscribers"] < clients:
            if time.monotonic() - t0 > 60:
                raise TimeoutError(f"only {srv.stats()['subscribers']}/{clients} subscribed")
            time.sleep(0.05)
        connect_s = time.monotonic() - t0
        time.sleep(0.5)  # let the connections settle
        srv.http.post("/bench/emit", json={"run_id": run_id, "count": count, "rate": rate})
        for child in children:
            child.wait(timeout=deadline + 30)
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    after = srv.stats()
    parts = [json.loads(out.read_text()) for out in outs]
    lat = sorted(x for p in parts for x in p["latencies"])
    ms = lambda v: round(v * 1000, 2)  # noqa: E731
    return {
        "clients": clients,
        "client": impl + ("+uvloop" if uvloop else ""),
        "client_processes": procs,
        "rate_per_s": rate,
        "events": count,
        "connect_seconds": round(connect_s, 2),
        "receipts": len(lat),
        "expected_receipts": clients * count,
        "p50_ms": ms(percentile(lat, 50)),
        "p90_ms": ms(percentile(lat, 90)),
        "p99_ms": ms(percentile(lat, 99)),
        "max_ms": ms(lat[-1]) if lat else None,
        "complete_clients": sum(p["complete_clients"] for p in parts),
        "missing": sum(p["missing_total"] for p in parts),
        "duplicates": sum(p["dupes_total"] for p in parts),
        "out_of_order": sum(p["out_of_order_total"] for p in parts),
        "hub_dropped": after["dropped_total"] - before["dropped_total"],
        "emitter_late_max_ms": ms(after["late_max"]),
        "commits": after["batches"] - before["batches"],
        "errors": [e for p in parts for e in p["errors"]],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", default="1,100,1000")
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--per-process", type=int, default=500, help="connections per client process")
    ap.add_argument(
        "--impl", default="httpx", help="clients, comma-separated: httpx, httpx+uvloop, raw"
    )
    ap.add_argument("--trials", type=int, default=3, help="repeats for 10 to 999 clients")
    ap.add_argument("--big-trials", type=int, default=1, help="repeats at 1,000+ clients")
    ap.add_argument("--json", type=Path, default=OUT / "latency.json")
    args = ap.parse_args()
    raise_nofile(8192)
    srv = Server("latency")
    results = []
    try:
        for impl in args.impl.split(","):
            for n in (int(x) for x in args.clients.split(",")):
                trials = 1 if n < 10 else args.trials if n < 1000 else args.big_trials
                for trial in range(trials):
                    procs = max(1, -(-n // args.per_process))
                    name, _, loop = impl.partition("+")
                    r, seen = guarded(
                        lambda n=n, procs=procs, name=name, loop=loop: measure(
                            srv, n, procs, args.rate, args.count, name, loop == "uvloop"
                        ),
                        attempts=3 if n < 1000 else 2,
                    )
                    r.update(seen, trial=trial)
                    results.append(r)
                    print(
                        f"{r['client']:>16} {n:>5} clients #{trial}: p50 {r['p50_ms']} ms  "
                        f"p99 {r['p99_ms']} ms  max {r['max_ms']} ms"
                        f"  receipts {r['receipts']}/{r['expected_receipts']}  complete "
                        f"{r['complete_clients']}/{n}  hub dropped {r['hub_dropped']}  "
                        f"errors {r['errors'][:2]}  foreign CPU {r['foreign_cpu']}",
                        flush=True,
                    )
    finally:
        srv.close()
    write_json(args.json, {"machine": machine(), "results": results})


if __name__ == "__main__":
    main()
