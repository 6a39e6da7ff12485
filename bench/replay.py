"""Replay of a run with 100,000 events over SSE from ``Last-Event-ID: 0``.

A real server (``bench/server.py``), a draft run created over the API, 100,000 events appended
through ``services.writer.append`` (calls of 1,000), then one httpx client in this process reads
``GET /api/runs/{id}/events/stream`` with ``Last-Event-ID: 0`` until it has every event of the run
(the 100,000 plus the run's own ``run.created``). Timed from sending the request to the last
event parsed; ids are checked to be strictly increasing with none missing. Median of ``--repeat``.

    .venv/bin/python bench/replay.py [--events 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import HOST, OUT, TOKEN, guarded, machine, write_json
from bench.latency import Server


def read_all(port: int, run_id: str, expect: int) -> dict[str, Any]:
    url = f"http://{HOST}:{port}/api/runs/{run_id}/events/stream"
    headers = {"Authorization": f"Bearer {TOKEN}", "Last-Event-ID": "0"}
    count = 0
    last_id = 0
    gaps = 0
    buf = b""
    first_byte = None
    start = time.perf_counter()
    with (
        httpx.Client(timeout=60) as client,
        client.stream("GET", url, headers=headers) as resp,
    ):
        resp.raise_for_status()
        for chunk in resp.iter_raw():
            if first_byte is None:
                first_byte = time.perf_counter() - start
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                if line.startswith(b"id: "):
                    i = int(line[4:])
                    if i <= last_id:
                        gaps += 1
                    last_id = i
                    count += 1
            if count >= expect:
                break
    elapsed = time.perf_counter() - start
    return {
        "seconds": elapsed,
        "first_byte_s": first_byte,
        "events": count,
        "last_id": last_id,
        "not_increasing": gaps,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path, default=OUT / "replay.json")
    args = ap.parse_args()
    srv = Server("replay")
    try:
        run_id = srv.new_run()
        fill = srv.http.post(
            "/bench/fill", json={"run_id": run_id, "count": args.events, "chunk": 1000}
        ).json()
        stats = srv.stats()
        expect = args.events + 1  # and the run's ``run.created``
        tries = []
        for _ in range(args.repeat):
            t, seen = guarded(lambda: read_all(srv.port, run_id, expect))
            tries.append({**t, **seen})
    finally:
        srv.close()
    for t in tries:
        assert t["events"] == expect and t["last_id"] == stats["last_id"], t
        assert t["not_increasing"] == 0, t
    secs = [t["seconds"] for t in tries]
    result = {
        "events": expect,
        "fill_seconds": round(fill["seconds"], 3),
        "fill_events_per_s": round(args.events / fill["seconds"]),
        "median_seconds": round(statistics.median(secs), 3),
        "all_seconds": [round(s, 3) for s in secs],
        "first_byte_ms": [round(t["first_byte_s"] * 1000, 1) for t in tries],
        "events_per_s": round(expect / statistics.median(secs)),
        "foreign_cpu": [t["foreign_cpu"] for t in tries],
    }
    print(
        f"replay of {expect} events: median {result['median_seconds']} s "
        f"(runs {result['all_seconds']}, first byte {result['first_byte_ms']} ms); "
        f"fill {args.events} via writer.append x1000: {result['fill_seconds']} s"
    )
    write_json(args.json, {"machine": machine(), **result})


if __name__ == "__main__":
    main()
