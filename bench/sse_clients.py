"""A client process holding many SSE connections to one run (asyncio).

Each connection reads ``GET /api/runs/{id}/events/stream`` with ``Last-Event-ID: after`` until it
has ``expect`` events or the deadline passes. ``--impl httpx`` (the default) reads with httpx;
``--impl raw`` with a minimal asyncio protocol (HTTP/1.1 by hand), to show how much of the
measured latency is the measuring client's own cost on a small machine. For every event whose
data carries ``t`` (the server's ``time.time()`` at append), it records ``receipt time - t``.
It checks that it got every ``i`` from 0 to expect-1 exactly once, with strictly increasing ids.

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

from bench._common import HOST, TOKEN, write_json


async def one(
    client: httpx.AsyncClient,
    gate: asyncio.Semaphore,
    url: str,
    after: int,
    expect: int,
    end: float,
    connected: list[int],
) -> dict[str, Any]:
    tally = _Tally(after)
    error = None
    try:
        async with gate:  # at most a few connection attempts at once
            cm = client.stream("GET", url, headers={"Last-Event-ID": str(after)})
            resp = await cm.__aenter__()
            connected[0] += 1
        try:
            resp.raise_for_status()
            async for chunk in resp.aiter_raw():
                tally.feed(chunk, time.time())
                if len(tally.seen) >= expect or time.monotonic() > end:
                    break
        finally:
            await cm.__aexit__(None, None, None)
    except Exception as exc:  # reported, not raised: one broken stream must not hide the rest
        error = f"{type(exc).__name__}: {exc}"
    return tally.result(expect, error)


class _Tally:
    """Per-connection bookkeeping shared by both client implementations."""

    def __init__(self, after: int) -> None:
        self.lat: list[float] = []
        self.seen: set[int] = set()
        self.dupes = self.out_of_order = 0
        self.last_id = after
        self.buf = b""

    def feed(self, chunk: bytes, now: float) -> None:
        self.buf += chunk
        *lines, self.buf = self.buf.split(b"\n")
        for line in lines:
            if not line.startswith(b"data: "):
                continue
            ev = json.loads(line[6:])
            if ev["id"] <= self.last_id:
                self.out_of_order += 1
            self.last_id = ev["id"]
            data = ev["data"]
            i = data.get("i")
            if i in self.seen:
                self.dupes += 1
            self.seen.add(i)
            if "t" in data:
                self.lat.append(now - data["t"])

    def result(self, expect: int, error: str | None) -> dict[str, Any]:
        missing = sum(1 for i in range(expect) if i not in self.seen)
        return {
            "lat": self.lat,
            "missing": missing,
            "dupes": self.dupes,
            "out_of_order": self.out_of_order,
            "error": error,
        }


class _RawSse(asyncio.Protocol):
    """HTTP/1.1 GET, then chunked SSE body; chunk-size lines are skipped (they never start
    with ``data: ``), so the tally sees the frames."""

    def __init__(self, tally: _Tally, expect: int, done: asyncio.Future[None]) -> None:
        self.tally = tally
        self.expect = expect
        self.done = done
        self.head = b""
        self.in_body = False

    def data_received(self, data: bytes) -> None:
        now = time.time()
        if not self.in_body:
            self.head += data
            head, sep, rest = self.head.partition(b"\r\n\r\n")
            if not sep:
                return
            if not head.startswith(b"HTTP/1.1 200"):
                self._finish(RuntimeError(head.split(b"\r\n", 1)[0].decode()))
                return
            self.in_body = True
            data = rest
        self.tally.feed(data, now)
        if len(self.tally.seen) >= self.expect:
            self._finish(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish(exc or ConnectionError("closed"))

    def _finish(self, exc: BaseException | None) -> None:
        if not self.done.done():
            if exc is None:
                self.done.set_result(None)
            else:
                self.done.set_exception(exc)


async def one_raw(
    port: int,
    gate: asyncio.Semaphore,
    path: str,
    after: int,
    expect: int,
    end: float,
) -> dict[str, Any]:
    tally = _Tally(after)
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    error = None
    transport = None
    try:
        async with gate:
            transport, _ = await loop.create_connection(
                lambda: _RawSse(tally, expect, done), HOST, port
            )
            transport.write(
                f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {TOKEN}\r\n"
                f"Accept: text/event-stream\r\nLast-Event-ID: {after}\r\n\r\n".encode()
            )
        await asyncio.wait_for(done, max(0.1, end - time.monotonic()))
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    finally:
        if transport is not None:
            transport.close()
    return tally.result(expect, error)


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    url = f"http://{HOST}:{args.port}/api/runs/{args.run}/events/stream"
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    timeout = httpx.Timeout(args.deadline, connect=args.deadline)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    end = time.monotonic() + args.deadline
    gate = asyncio.Semaphore(args.connect_parallel)
    connected = [0]
    if args.impl == "raw":
        path = f"/api/runs/{args.run}/events/stream"
        results = await asyncio.gather(
            *(
                one_raw(args.port, gate, path, args.after, args.expect, end)
                for _ in range(args.clients)
            )
        )
    else:
        async with httpx.AsyncClient(limits=limits, timeout=timeout, headers=headers) as client:
            results = await asyncio.gather(
                *(
                    one(client, gate, url, args.after, args.expect, end, connected)
                    for _ in range(args.clients)
                )
            )
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
    ap.add_argument("--impl", choices=["httpx", "raw"], default="httpx")
    ap.add_argument("--uvloop", action="store_true", help="run the client on uvloop")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    if args.uvloop:
        import uvloop

        result = uvloop.run(main_async(args))
    else:
        result = asyncio.run(main_async(args))
    write_json(args.out, result)


if __name__ == "__main__":
    main()
