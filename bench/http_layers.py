"""CPU of the HTTP/SSE path's own layers, per request and per SSE frame (issue 15).

Three micro-benchmarks in one process (uvloop, ``time.thread_time``, the minimum of ``--reps``
rounds, so another process's load inflates them less than a whole-server A/B):

- **layers**: a stand-in app answering a bodiless GET with ``--frames`` body messages (a run's
  SSE stream carries ~34), wrapped in each of Codeyard's pure-ASGI middlewares alone and in all
  six in ``codeyard.app``'s order; prints µs per request over the bare app.
- **hub**: ``--subscribers`` subscriptions of one run, each read by its own task; one event
  published at a time until every reader has it; prints µs per delivered batch per subscriber
  (what every SSE frame and every follower's batch pays in ``codeyard.events.hub``).
- **app** (``--app``): the real app (``create_app``, its lifespan on SQLite in a temporary
  directory, every router loaded) answering requests a client makes, each through the whole
  ASGI stack (middleware, routing, authentication, the handler's read); prints µs of the
  event-loop thread's CPU per request. A run's create, stream and approvals are under
  ``/api/runs`` and ``/api/approvals``; a browser's pages read ``/api/projects`` too.

Run it from the checkout to measure (it imports ``codeyard`` from the working directory), e.g.
base and head in two worktrees, alternating:

    .venv/bin/python bench/http_layers.py [--frames 34] [--subscribers 20] [--app]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import warnings
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


#: What the app section asks: method, path, body (the ids exist nowhere: each read answers 404
#: after its lookup, so nothing the requests write changes the next round).
REQUESTS: tuple[tuple[str, str, bytes], ...] = (
    ("GET", "/api/health", b""),
    ("GET", "/api/runs/run_missing", b""),
    ("GET", "/api/runs/run_missing/events", b""),
    ("POST", "/api/approvals/apr_missing/resolve", b'{"decision": "approved"}'),
    ("GET", "/api/projects/prj_missing/tickets", b""),
    ("GET", "/api/settings", b""),
    ("GET", "/api/nothing-here", b""),
)


async def app_requests(reps: int, calls: int = 300) -> dict[str, float]:
    from codeyard.api import lazy
    from codeyard.app import create_app
    from codeyard.config import Settings

    token = "cy_bench_http_layers"
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        app = create_app(Settings(data_dir=Path(tmp) / "data", admin_token=token))
        async with app.router.lifespan_context(app):
            lazy.load_all(app)
            statuses: dict[str, int] = {}
            best: dict[str, float] = {}
            for _ in range(reps):
                for method, path, body in REQUESTS:
                    name = f"{method} {path}"
                    start = time.thread_time()
                    for _ in range(calls):
                        statuses[name] = await _one(app, method, path, body, token)
                    us = (time.thread_time() - start) / calls * 1e6
                    best[name] = min(best.get(name, us), us)
    return {f"{name} [{statuses[name]}]": us for name, us in best.items()}


async def _one(app: Any, method: str, path: str, body: bytes, token: str) -> int:
    status = 0
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)  # the client stays: a handler listening for a disconnect
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Any) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    headers = [(b"host", b"127.0.0.1:8420"), (b"authorization", f"Bearer {token}".encode())]
    if body:
        headers.append((b"content-type", b"application/json"))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8420),
    }
    await app(scope, receive, send)
    return status


async def main(args: argparse.Namespace) -> None:
    if args.app:
        per_request = await app_requests(args.reps)
        print(f"app: µs of CPU per request through the whole app (min of {args.reps})")
        for name, us in per_request.items():
            print(f"  {name:52s} {us:7.1f}")
        return
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
    ap.add_argument("--app", action="store_true", help="the app section only")
    uvloop.run(main(ap.parse_args()))
