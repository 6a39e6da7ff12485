"""CPU of the HTTP/SSE path's own layers, per request and per SSE frame (issue 15).

Two micro-benchmarks in one process (uvloop, ``time.thread_time``, the minimum of ``--reps``
rounds, so another process's load inflates them less than a whole-server A/B):

- **layers**: a stand-in app answering a bodiless GET with ``--frames`` body messages (a run's
  SSE stream carries ~34), wrapped in each of Codeyard's pure-ASGI middlewares alone and in all
  six in ``codeyard.app``'s order; prints µs per request over the bare app.
- **hub**: ``--subscribers`` subscriptions of one run, each read by its own task; one event
  published at a time until every reader has it; prints µs per delivered batch per subscriber
  (what every SSE frame and every follower's batch pays in ``codeyard.events.hub``).

Run it from the checkout to measure (it imports ``codeyard`` from the working directory), e.g.
base and head in two worktrees, alternating:

    .venv/bin/python bench/http_layers.py [--frames 34] [--subscribers 20]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import uvloop

sys.path.insert(0, str(Path.cwd()))

from codeyard.api.hosts import HostAllowlistMiddleware
from codeyard.api.middleware import (
    BodyLimitMiddleware,
    SecurityHeadersMiddleware,
    WebSocketOriginMiddleware,
)
from codeyard.api.preview_host import PreviewHostMiddleware
from codeyard.background import AnsweredMiddleware, Background
from codeyard.domain.events import StoredEvent
from codeyard.events.hub import EventFilter, Hub

SCOPE = {
    "type": "http",
    "http_version": "1.1",
    "method": "GET",
    "path": "/api/runs/run_x/events/stream",
    "query_string": b"",
    "headers": [(b"host", b"127.0.0.1:8420"), (b"authorization", b"Bearer cy_x")],
}
HOSTS = frozenset({"127.0.0.1", "localhost"})


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Any) -> None:
    return None


def _stand_in(frames: int) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(frames):
            await send({"type": "http.response.body", "body": b"x", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


async def layers(frames: int, reps: int, calls: int = 3000) -> dict[str, float]:
    inner = _stand_in(frames)
    background = Background(None)
    background.answered.set()

    def all_six() -> Any:
        app: Any = BodyLimitMiddleware(inner, 1 << 20)
        app = WebSocketOriginMiddleware(app, ())
        app = HostAllowlistMiddleware(app, HOSTS)
        app = SecurityHeadersMiddleware(app)
        app = PreviewHostMiddleware(app, "preview.localhost")
        return AnsweredMiddleware(app, background)

    apps: dict[str, Any] = {
        "bare": inner,
        "BodyLimitMiddleware": BodyLimitMiddleware(inner, 1 << 20),
        "WebSocketOriginMiddleware": WebSocketOriginMiddleware(inner, ()),
        "HostAllowlistMiddleware": HostAllowlistMiddleware(inner, HOSTS),
        "SecurityHeadersMiddleware": SecurityHeadersMiddleware(inner),
        "PreviewHostMiddleware": PreviewHostMiddleware(inner, "preview.localhost"),
        "AnsweredMiddleware": AnsweredMiddleware(inner, background),
        "all six": all_six(),
    }
    best = dict.fromkeys(apps, float("inf"))
    for _ in range(reps):
        for name, app in apps.items():
            start = time.thread_time()
            for _ in range(calls):
                await app(SCOPE, _receive, _send)
            best[name] = min(best[name], (time.thread_time() - start) / calls * 1e6)
    return {name: us - best["bare"] for name, us in best.items() if name != "bare"}


async def hub(subscribers: int, reps: int, events: int = 3000) -> float:
    the_hub = Hub()
    subs = [the_hub.subscribe(EventFilter(run_id="run_x")) for _ in range(subscribers)]
    got = 0
    all_got = asyncio.Event()

    async def reader(sub: Any) -> None:
        nonlocal got
        while True:
            await sub.next_batch()
            got += 1
            if got == subscribers:
                all_got.set()

    tasks = [asyncio.create_task(reader(s)) for s in subs]
    event = StoredEvent(1, "run_x", "prj_x", 1, "agent.delta", "2026-12-05T00:00:00Z", "{}")
    best = float("inf")
    for _ in range(reps):
        start = time.thread_time()
        for _ in range(events):
            got = 0
            all_got.clear()
            the_hub.publish([event])
            await all_got.wait()
        best = min(best, (time.thread_time() - start) / events / subscribers * 1e6)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return best


async def main(args: argparse.Namespace) -> None:
    added = await layers(args.frames, args.reps)
    print(f"layers: µs added to a bodiless GET of {args.frames} frames (min of {args.reps})")
    for name, us in added.items():
        print(f"  {name:28s} {us:6.2f}")
    per_batch = await hub(args.subscribers, args.reps)
    print(f"hub: {per_batch:.2f} µs per delivered batch per subscriber ({args.subscribers} subs)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=34, help="body messages per request")
    ap.add_argument("--subscribers", type=int, default=20)
    ap.add_argument("--reps", type=int, default=5)
    uvloop.run(main(ap.parse_args()))
