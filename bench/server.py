"""The real app under a real Uvicorn server, plus a few bench-only routes (no auth, 127.0.0.1).

The routes reach into the running services to append events straight through
``services.writer.append`` — the same call the executor makes — so a benchmark can stamp each
event with ``time.time()`` at the moment of the append:

* ``POST /bench/emit {run_id, count, rate}``: append ``count`` single-event batches at a steady
  ``rate`` per second in the background; each event's data carries ``t`` (send time) and ``i``;
* ``POST /bench/fill {run_id, count, chunk}``: append ``count`` events in calls of ``chunk``;
* ``GET /bench/stats``: subscribers, ``hub.dropped_total``, the newest event id, emitter state.

    .venv/bin/python bench/server.py --port P --data-dir D
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvicorn
from fastapi import FastAPI, Request

from bench._common import HOST, TOKEN
from codeyard.app import create_app
from codeyard.config import Settings
from codeyard.domain.events import NewEvent

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
                ev = NewEvent("agent.delta", {"t": t, "i": i, "message_id": "msg_b", "text": TEXT})
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
            evs = [
                NewEvent("agent.delta", {"i": done + k, "message_id": "msg_f", "text": TEXT})
                for k in range(n)
            ]
            await writer.append(body["run_id"], evs)
            done += n
        return {"appended": done, "seconds": time.perf_counter() - start}

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
