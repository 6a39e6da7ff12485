"""A request's dependencies and a stream's end run on the event loop, not in the thread pool
(issue 15): FastAPI runs a plain-function dependency, and Starlette a plain-function
background task, in a worker thread, a trip there and back for every API request (the services
dependency) and for every event stream that ends (its slot given back). Real parts: the app
over ASGI, the script agent, real git; the pool's use seen at ``anyio.to_thread.run_sync``,
where Starlette sends both.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio.to_thread
import pytest

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
