"""A client process holding many SSE connections to one run (httpx, asyncio).

Each connection reads ``GET /api/runs/{id}/events/stream`` with ``Last-Event-ID: after`` until it
has ``expect`` events or the deadline passes. For every event whose data carries ``t`` (the
server's ``time.time()`` at append), it records ``receipt time - t``. It checks that it got every
``i`` from 0 to expect-1 exactly once, with strictly increasing ids.

    .venv/bin/python bench/sse_clients.py --port P --run RUN --clients K --after ID \
        --expect N --deadline SECONDS --out result.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import HOST, TOKEN, write_json  # noqa: E402


async def one(
    client: httpx.AsyncClient,
    gate: asyncio.Semaphore,
    url: str,
    after: int,
    expect: int,
    end: float,
    connected: list[int],
) -> dict[str, Any]:
    lat: list[float] = []
    seen: set[int] = set()
    dupes = out_of_order = 0
    last_id = after
    buf = b""
    error = None
    try:
        async with gate:  # at most a few connection attempts at once
            cm = client.stream("GET", url, headers={"Last-Event-ID": str(after)})
            resp = await cm.__aenter__()
            connected[0] += 1
        try:
            resp.raise_for_status()
            async for chunk in resp.aiter_raw():
                now = time.time()
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if not line.startswith(b"data: "):
                        continue
                    ev = json.loads(line[6:])
                    if ev["id"] <= last_id:
                        out_of_order += 1
                    last_id = ev["id"]
                    data = ev["data"]
                    i = data.get("i")
                    if i in seen:
                        dupes += 1
                    seen.add(i)
                    if "t" in data:
                        lat.append(now - data["t"])
                if len(seen) >= expect or time.monotonic() > end:
                    break
        finally:
            await cm.__aexit__(None, None, None)
    except Exception as exc:  # reported, not raised: one broken stream must not hide the rest
        error = f"{type(exc).__name__}: {exc}"
    missing = sum(1 for i in range(expect) if i not in seen)
    return {"lat": lat, "missing": missing, "dupes": dupes, "out_of_order": out_of_order,
            "error": error}  # fmt: skip


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    url = f"http://{HOST}:{args.port}/api/runs/{args.run}/events/stream"
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    timeout = httpx.Timeout(args.deadline, connect=args.deadline)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    end = time.monotonic() + args.deadline
    gate = asyncio.Semaphore(args.connect_parallel)
    connected = [0]
    async with httpx.AsyncClient(limits=limits, timeout=timeout, headers=headers) as client:
        results = await asyncio.gather(
            *(one(client, gate, url, args.after, args.expect, end, connected)
              for _ in range(args.clients))
        )  # fmt: skip
    lat = [x for r in results for x in r["lat"]]
    return {
        "clients": args.clients,
        "latencies": lat,
        "complete_clients": sum(1 for r in results if r["missing"] == 0 and not r["error"]),
        "missing_total": sum(r["missing"] for r in results),
        "dupes_total": sum(r["dupes"] for r in results),
        "out_of_order_total": sum(r["out_of_order"] for r in results),
        "errors": sorted({r["error"] for r in results if r["error"]})[:5],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--run", required=True)
    ap.add_argument("--clients", type=int, required=True)
    ap.add_argument("--after", type=int, default=0)
    ap.add_argument("--expect", type=int, required=True)
    ap.add_argument("--deadline", type=float, default=90)
    ap.add_argument("--connect-parallel", type=int, default=50)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    write_json(args.out, asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
