"""The real app under a real Uvicorn server, plus a few bench-only routes (no auth, 127.0.0.1).

The routes reach into the running services to append events straight through
``services.writer.append`` — the same call the executor makes — so a benchmark can stamp each
event with ``time.time()`` at the moment of the append:

* ``POST /bench/emit {run_id, count, rate}``: append ``count`` single-event batches at a steady
  ``rate`` per second in the background; each event's data carries ``t`` (send time) and ``i``;
* ``POST /bench/fill {run_id, count, chunk}``: append ``count`` events in calls of ``chunk``;
* ``GET /bench/stats``: subscribers, ``hub.dropped_total``, the newest event id, emitter state;
* ``GET /bench/memory?top=N[&start=FRAMES]``: the biggest live Python allocations by
  traceback once ``start`` began tracing (``bench/stream_memory.py --trace``).

    .venv/bin/python bench/server.py --port P --data-dir D
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvicorn
from fastapi import FastAPI, Request

from bench._common import HOST, TOKEN
from codeyard.app import create_app
from codeyard.config import Settings
from codeyard.domain.events import AgentDelta, Unknown

TEXT = "a streamed reply, coalesced over ~50 ms: some words of text. " * 2


def install(app: FastAPI) -> None:
    state: dict[str, Any] = {"emitting": False, "emitted": 0, "late_max": 0.0}
    tasks: set[asyncio.Task[Any]] = set()

    async def emit(run_id: str, count: int, rate: float) -> None:
        writer = app.state.services.writer
        pending: list[asyncio.Task[Any]] = []
        start = time.perf_counter() + 0.05
        try:
            for i in range(count):
                due = start + i / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    state["late_max"] = max(state["late_max"], -delay)
                t = time.time()
                # An agent.delta carrying the send time and index besides its text (the typed
                # model refuses extra fields; the writer stores any event's data as it is).
                data = {"t": t, "i": i, "message_id": "msg_b", "text": TEXT}
                ev = Unknown(type="agent.delta", payload=data)
                # Not awaited here: a slow commit must not shift the schedule (group commit
                # merges whatever piles up).
                pending.append(asyncio.ensure_future(writer.append(run_id, [ev])))
                state["emitted"] = i + 1
            await asyncio.gather(*pending)
        finally:
            state["emitting"] = False

    @app.post("/bench/emit")
    async def bench_emit(request: Request) -> dict[str, Any]:
        body = await request.json()
        state.update(emitting=True, emitted=0, late_max=0.0)
        task = asyncio.create_task(emit(body["run_id"], int(body["count"]), float(body["rate"])))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return {"started": True}

    @app.post("/bench/fill")
    async def bench_fill(request: Request) -> dict[str, Any]:
        body = await request.json()
        writer = app.state.services.writer
        count, chunk = int(body["count"]), int(body.get("chunk", 1000))
        start = time.perf_counter()
        done = 0
        while done < count:
            n = min(chunk, count - done)
            evs = [AgentDelta(message_id="msg_f", text=f"{done + k} {TEXT}") for k in range(n)]
            await writer.append(body["run_id"], evs)
            done += n
        return {"appended": done, "seconds": time.perf_counter() - start}

    @app.get("/bench/memory")
    async def bench_memory(top: int = 15, start: int = 0) -> dict[str, Any]:
        """After a full collection: where Python's live allocations were made, biggest first,
        once tracing runs (``start=<frames>`` starts it; tracing slows the server)."""
        gc.collect()
        if start and not tracemalloc.is_tracing():
            tracemalloc.start(start)
            return {"tracing": True, "started": True}
        if not tracemalloc.is_tracing():
            return {"tracing": False}
        snap = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )
        stats = snap.statistics("traceback")[:top]
        return {
            "tracing": True,
            "traced_mb": round(tracemalloc.get_traced_memory()[0] / 2**20, 2),
            "top": [
                {
                    "kb": round(st.size / 1024, 1),
                    "count": st.count,
                    "where": [f"{f.filename}:{f.lineno}" for f in st.traceback][-6:],
                }
                for st in stats
            ],
        }

    @app.get("/bench/stats")
    async def bench_stats() -> dict[str, Any]:
        svc = app.state.services
        return {
            "subscribers": svc.hub.subscriber_count,
            "dropped_total": svc.hub.dropped_total,
            "last_id": svc.writer._next_id - 1,
            "batches": svc.writer.batches,
            **state,
        }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--data-dir", type=Path, required=True)
    args = ap.parse_args()
    settings = Settings(host=HOST, port=args.port, data_dir=args.data_dir, admin_token=TOKEN)
    app = create_app(settings)
    install(app)
    # As ``codeyard serve`` runs it (codeyard/server.py): uvloop + httptools when installed.
    uvicorn.run(app, host=HOST, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
