"""Server memory while a run with 100,000 events streams to 10 SSE clients (issue 15, target 5:
the server's RSS grows by at most 20 MB).

A real server process (``bench/server.py``: the app under Uvicorn, SQLite, with bench-only
routes that append through ``services.writer.append``, the executor's own call) on a loopback
port. Memory is the server's ``VmRSS`` and its peak ``VmHWM`` from ``/proc``; the peak is reset
(``/proc/PID/clear_refs`` = 5) at the start of each phase, so each phase reports its own peak.

1. **idle**: 3 s after start-up (routers load in the background ~1 s after the first 200).
2. **live**: 10 clients follow a draft run's SSE stream (``Last-Event-ID``: the newest id, so
   everything they get is live); once the hub reports all 10 subscribed, ``--events`` events
   are appended in calls of ``--chunk``; the phase ends when every client has the last id.
3. **replay** (twice): 10 new clients read the whole run at once from ``Last-Event-ID: 0``.

Growth = peak (or end) RSS of the phase minus the RSS just before it. The clients are a minimal
HTTP/1.1 reader in this process (no client library: its CPU would compete with the server's on
a small machine); each checks it got every id of the run once, in order.

    .venv/bin/python bench/stream_memory.py [--events 100000] [--clients 10] [--chunk 100]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import HOST, OUT, TOKEN, Interference, machine, write_json
from bench.latency import Server

TARGET_MB = 20.0


def mem_mb(pid: int) -> dict[str, float]:
    """``VmRSS`` and ``VmHWM`` (peak RSS since the last reset) of ``pid``, in MB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


def reset_peak(pid: int) -> None:
    """Make ``VmHWM`` start again from the current RSS (Linux ``clear_refs``, own process)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


class _Reader(asyncio.Protocol):
    """GET the run's SSE stream by hand; counts ``id:`` lines and checks they increase."""

    def __init__(self, until: int, done: asyncio.Future[None]) -> None:
        self.until = until
        self.done = done
        self.head = b""
        self.body = False
        self.buf = b""
        self.last = 0
        self.count = 0
        self.bad = 0

    def data_received(self, data: bytes) -> None:
        if not self.body:
            self.head += data
            head, sep, rest = self.head.partition(b"\r\n\r\n")
            if not sep:
                return
            if not head.startswith(b"HTTP/1.1 200"):
                self._finish(RuntimeError(head.split(b"\r\n", 1)[0].decode()))
                return
            self.body = True
            data = rest
        *lines, self.buf = (self.buf + data).split(b"\n")
        for line in lines:
            if line.startswith(b"id: "):
                i = int(line[4:])
                self.bad += i <= self.last
                self.last = i
                self.count += 1
        if self.last >= self.until:
            self._finish(None)

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish(exc or ConnectionError("closed before the last event"))

    def _finish(self, exc: BaseException | None) -> None:
        if self.done.done():
            return
        if exc is None:
            self.done.set_result(None)
        else:
            self.done.set_exception(exc)


async def open_reader(
    port: int, run_id: str, after: int, until: int
) -> tuple[_Reader, asyncio.Future[None], asyncio.BaseTransport]:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    transport, reader = await loop.create_connection(lambda: _Reader(until, done), HOST, port)
    transport.write(
        f"GET /api/runs/{run_id}/events/stream HTTP/1.1\r\nHost: {HOST}\r\n"
        f"Authorization: Bearer {TOKEN}\r\nAccept: text/event-stream\r\n"
        f"Last-Event-ID: {after}\r\n\r\n".encode()
    )
    return reader, done, transport


async def sample_until(pid: int, done: asyncio.Future[Any], out: list[float]) -> None:
    while not done.done():
        out.append(mem_mb(pid)["VmRSS"])
        await asyncio.sleep(0.05)


async def phase(
    srv: Server,
    api: httpx.AsyncClient,
    run_id: str,
    clients: int,
    after: int,
    fill: dict[str, int] | None,
    deadline: float,
    trace: int,
) -> dict[str, Any]:
    """One phase: ``clients`` readers from ``after``; ``fill`` appends while they read."""
    pid = srv.proc.pid
    if trace:
        await api.get("/bench/memory", params={"start": trace})
    until = (await api.get("/bench/stats")).json()["last_id"]
    subs0 = (await api.get("/bench/stats")).json()["subscribers"]
    if fill is not None:
        until += fill["count"]
    await asyncio.sleep(1)
    before = mem_mb(pid)["VmRSS"]
    reset_peak(pid)
    started = time.perf_counter()
    opened = [await open_reader(srv.port, run_id, after, until) for _ in range(clients)]
    readers = [r for r, _, _ in opened]
    finished = asyncio.gather(*(d for _, d, _ in opened))
    rss: list[float] = []
    sampler = asyncio.create_task(sample_until(pid, finished, rss))
    fill_s = None
    try:
        if fill is not None:
            end = time.monotonic() + 30
            while (await api.get("/bench/stats")).json()["subscribers"] < subs0 + clients:
                if time.monotonic() > end:
                    raise TimeoutError("the clients did not subscribe within 30 s")
                await asyncio.sleep(0.05)
            resp = await api.post("/bench/fill", json={"run_id": run_id, **fill}, timeout=600)
            fill_s = resp.json()["seconds"]
        await asyncio.wait_for(finished, deadline)
        elapsed = time.perf_counter() - started
    finally:
        for _, _, transport in opened:
            transport.close()
        await asyncio.gather(sampler, return_exceptions=True)
    peak = mem_mb(pid)["VmHWM"]
    await asyncio.sleep(1)
    after_mb = mem_mb(pid)["VmRSS"]
    traced = (await api.get("/bench/memory")).json()
    return {
        "clients": clients,
        "events_each": [r.count for r in readers],
        "not_increasing": sum(r.bad for r in readers),
        "last_ids_ok": all(r.last == until for r in readers),
        "seconds": round(elapsed, 2),
        "fill_seconds": round(fill_s, 2) if fill_s is not None else None,
        "rss_before_mb": round(before, 1),
        "rss_peak_mb": round(max(peak, *rss), 1),
        "rss_end_mb": round(after_mb, 1),
        "peak_growth_mb": round(max(peak, *rss) - before, 1),
        "end_growth_mb": round(after_mb - before, 1),
        **({"tracemalloc": traced} if traced.get("tracing") else {}),
    }


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    srv = Server("stream_memory")
    try:
        await asyncio.sleep(3)
        idle = mem_mb(srv.proc.pid)["VmRSS"]
        run_id = srv.new_run()
        mon = Interference()
        mon.start()
        async with httpx.AsyncClient(
            base_url=f"http://{HOST}:{srv.port}",
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=60,
        ) as api:
            last = (await api.get("/bench/stats")).json()["last_id"]
            fill = {"count": args.events, "chunk": args.chunk}
            live = await phase(
                srv, api, run_id, args.clients, last, fill, args.deadline, args.trace
            )
            replays = [
                await phase(srv, api, run_id, args.clients, 0, None, args.deadline, args.trace)
                for _ in range(2)
            ]
        foreign = mon.stop()
        final = mem_mb(srv.proc.pid)["VmRSS"]
    finally:
        srv.close()
    worst = max(p["peak_growth_mb"] for p in [live, *replays])
    return {
        "machine": machine(),
        "events": args.events,
        "chunk": args.chunk,
        "idle_rss_mb": round(idle, 1),
        "live": live,
        "replay": replays,
        "final_rss_mb": round(final, 1),
        "worst_peak_growth_mb": worst,
        "target_mb": TARGET_MB,
        "met": worst <= TARGET_MB,
        "foreign_cpu": round(foreign, 3),
    }


def table(r: dict[str, Any]) -> str:
    rows = [("idle server RSS", f"{r['idle_rss_mb']} MB")]
    for name, p in [
        ("live", r["live"]),
        *((f"replay {k + 1}", p) for k, p in enumerate(r["replay"])),
    ]:
        ok = "ok" if p["last_ids_ok"] and not p["not_increasing"] else "MISSING/UNORDERED"
        rows.append(
            (
                f"{name}: {p['clients']} clients x {min(p['events_each'])} events ({ok})",
                f"{p['seconds']} s; RSS {p['rss_before_mb']} → peak {p['rss_peak_mb']} "
                f"(+{p['peak_growth_mb']}) → end {p['rss_end_mb']} MB (+{p['end_growth_mb']})",
            )
        )
    rows.append(("worst peak growth (target ≤ 20 MB)", f"{r['worst_peak_growth_mb']} MB"))
    rows.append(("foreign CPU", str(r["foreign_cpu"])))
    return "\n".join(["| phase | result |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows)])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument("--clients", type=int, default=10)
    ap.add_argument("--chunk", type=int, default=100, help="events per writer.append call")
    ap.add_argument("--deadline", type=float, default=240, help="seconds per phase")
    ap.add_argument(
        "--trace", type=int, default=0, help="tracemalloc frames in the server (slow; 0: off)"
    )
    ap.add_argument("--json", type=Path, default=OUT / "stream_memory.json")
    args = ap.parse_args()
    result = asyncio.run(bench(args))
    write_json(args.json, result)
    print(table(result))


if __name__ == "__main__":
    main()
