"""A request's dependencies, a stream's end and the port watcher's look run on the event loop,
not in a worker thread (issue 15): FastAPI runs a plain-function dependency, and Starlette a
plain-function background task, in a worker thread, a trip there and back for every API
request (the services dependency) and for every event stream that ends (its slot given back);
the watcher sent its netlink query to one every second. Real parts: the app over ASGI, the
script agent, real git, a real listening socket; the pool's use seen at
``anyio.to_thread.run_sync`` (where Starlette sends both) and ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest

from codeyard.preview import leases
from codeyard.preview.detect import PortWatcher
from tests.conftest import Api

pytestmark = pytest.mark.anyio


async def test_requests_and_stream_ends_send_nothing_to_the_thread_pool(
    api: Api, git_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = {
        "prompt": "Write notes",
        "repo_path": str(git_repo),
        "provider": "script",
        "agent_options": {
            "scenario": {"steps": [{"write": {"path": "notes.txt", "content": "one\n"}}]},
            "permission_mode": "auto",
        },
    }
    run = (await api.post("/api/runs", json=body)).json()
    await api.wait_status(run["id"], "review")
    sent: list[str] = []
    run_sync = anyio.to_thread.run_sync

    async def noted(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        sent.append(getattr(func, "__qualname__", repr(func)))
        return await run_sync(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", noted)
    assert (await api.get(f"/api/runs/{run['id']}")).status_code == 200
    assert (await api.get("/api/approvals")).status_code == 200
    stream = await api.get(f"/api/runs/{run['id']}/events/stream?until_idle=true")
    assert stream.status_code == 200 and "run.created" in stream.text
    assert sent == []


async def test_the_port_watcher_looks_without_a_worker_thread(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its look at the listening ports, every second while leases exist, is netlink's answer
    on the event loop (a trip to a worker thread and back cost more than the query)."""
    lease = await leases.ensure(api.services.writer, "run_watched")
    reported: list[tuple[str, str, dict[str, object]]] = []

    async def report(run_id: str, kind: str, data: dict[str, object]) -> None:
        reported.append((run_id, kind, data))

    watcher = PortWatcher(api.services.engine, report)
    sent: list[str] = []
    to_thread = asyncio.to_thread

    async def noted(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        sent.append(getattr(func, "__qualname__", repr(func)))
        return await to_thread(func, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", noted)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", lease.base_port))
        listener.listen()
        await watcher.poll_once()
    assert [(r, k) for r, k, _ in reported] == [("run_watched", "preview.port_opened")]
    assert sent == []
