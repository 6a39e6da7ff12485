"""Approval latency with the ``script`` provider (issue 5; targets: p99 < 100 ms each).

A real server process (``tests/support/server.py``: ``run_server`` under Uvicorn on a loopback
port) runs one ``script`` run of N ``write`` steps in permission mode ``default``, so every step
stops for an approval. One httpx client follows the run's SSE stream (``?after=0``), stamping
each frame with ``time.time()`` as it is parsed; for each approval it waits a little (10 ms, like
a person would take longer), posts ``POST /api/approvals/{id}/resolve`` and stamps its return.

Measured per approval:

- **requested → SSE**: receipt of the ``approval.requested`` frame minus the event's ``ts``, the
  server's clock when the writer numbered the event (same machine, same clock). ``ts`` has
  millisecond resolution and is truncated, so this reads up to 1 ms high.
- **resolve → agent continues, seen over SSE**: receipt of the step's next event (its
  ``tool.result``: the agent wrote the file and reported it) minus the moment the resolve
  request returned. This is what an operator's client observes; it includes SSE delivery.
- **resolve → agent continues, in the server**: that ``tool.result``'s ``ts`` minus the
  ``approval.resolved`` event's ``ts`` (both server clock, millisecond resolution). Before the
  executor stores a writing tool's result it looks for changed files (``git`` snapshots and diff
  stats, ``executor/changes.py``), so this includes that work.
- **resolve → run working again, seen over SSE**: receipt of the ``run.status`` event
  ``waiting → running`` (written when the executor hands the answer back to the agent) minus
  the moment the resolve request returned.

    .venv/bin/python bench/approval_latency.py [--approvals 60] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _stats
from bench._common import Interference, fresh_dir, machine, make_repo, wait_quiet
from bench._common import write_json as save_json
from tests.support.server import ServerProcess, open_sse

TARGET_MS = 100.0
THINK_S = 0.010


def ts_seconds(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def summary(values: list[float]) -> dict[str, float]:
    """This bench's shape: p50, p90, p99, max and min, in ms to 2 digits."""
    return _stats.summary(values, (50, 90, 99), 2, low=True)


async def measure(server: ServerProcess, repo: Path, approvals: int) -> dict[str, Any]:
    steps = [{"write": {"path": f"f{i}.txt", "content": f"{i}\n"}} for i in range(approvals)]
    body = {
        "prompt": "Write the files",
        "repo_path": str(repo),
        "provider": "script",
        "agent_options": {"scenario": {"steps": steps}, "permission_mode": "default"},
    }
    requested_ms: list[float] = []
    resumed_sse_ms: list[float] = []
    resumed_server_ms: list[float] = []
    running_sse_ms: list[float] = []
    async with server.client() as api, server.client() as sse_client:
        resp = await api.post("/api/runs", json=body)
        assert resp.status_code == 201, resp.text
        run = resp.json()["id"]
        frames: asyncio.Queue[tuple[float, dict[str, Any]]] = asyncio.Queue()

        async def follow() -> None:
            path = f"/api/runs/{run}/events/stream"
            async with open_sse(sse_client, path, params={"after": 0}) as stream:
                async for frame in stream.frames():
                    frames.put_nowait((time.time(), frame.json()))

        reader = asyncio.create_task(follow())
        resolved_at: dict[str, float] = {}  # call id -> when the resolve request returned
        resolved_ts: dict[str, float] = {}  # call id -> approval.resolved ts
        call_of: dict[str, str] = {}  # approval id -> call id
        done = 0
        try:
            while done < approvals:
                seen, event = await asyncio.wait_for(frames.get(), 60)
                kind, data = event["type"], event["data"]
                if kind == "approval.requested":
                    approval = data["approval"]
                    requested_ms.append((seen - ts_seconds(event["ts"])) * 1000)
                    call_of[approval["id"]] = approval["call_id"]
                    await asyncio.sleep(THINK_S)
                    resp = await api.post(
                        f"/api/approvals/{approval['id']}/resolve", json={"decision": "approved"}
                    )
                    returned = time.time()
                    assert resp.status_code == 200, resp.text
                    resolved_at[approval["id"]] = returned
                elif kind == "approval.resolved":
                    resolved_ts[data["approval_id"]] = ts_seconds(event["ts"])
                elif kind == "tool.result":
                    approval_id = next(a for a, c in call_of.items() if c == data["call_id"])
                    returned = resolved_at.pop(approval_id)
                    resumed_sse_ms.append((seen - returned) * 1000)
                    resumed_server_ms.append(
                        (ts_seconds(event["ts"]) - resolved_ts.pop(approval_id)) * 1000
                    )
                    call_of.pop(approval_id)
                    done += 1
                elif kind == "run.status" and data.get("to") == "running" and resolved_at:
                    running_sse_ms.append((seen - max(resolved_at.values())) * 1000)
                elif kind == "run.status" and data.get("to") in ("failed", "cancelled"):
                    raise RuntimeError(f"the run stopped: {data}")
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
    return {
        "requested_to_sse": summary(requested_ms),
        "resolve_to_continue_sse": summary(resumed_sse_ms),
        "resolve_to_continue_server": summary(resumed_server_ms),
        "resolve_to_running_sse": summary(running_sse_ms),
        "raw_ms": {
            "requested_to_sse": [round(x, 2) for x in requested_ms],
            "resolve_to_continue_sse": [round(x, 2) for x in resumed_sse_ms],
            "resolve_to_continue_server": [round(x, 2) for x in resumed_server_ms],
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--approvals", type=int, default=60)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    os.environ.update(
        GIT_AUTHOR_NAME="bench",
        GIT_AUTHOR_EMAIL="bench@codeyard.invalid",
        GIT_COMMITTER_NAME="bench",
        GIT_COMMITTER_EMAIL="bench@codeyard.invalid",
    )
    root = fresh_dir("approval_latency")
    repo = make_repo(root / "repo")
    server = ServerProcess(root / "data", env={"CODEYARD_DEFAULT_PERMISSION_MODE": "default"})
    server.start()
    try:
        quiet = wait_quiet(max_wait=20)
        mon = Interference()
        mon.start()
        result = asyncio.run(measure(server, repo, args.approvals))
        foreign = mon.stop()
    finally:
        server.stop()
    result.update(
        machine=machine(),
        approvals=args.approvals,
        think_ms=THINK_S * 1000,
        foreign_cpu=round(foreign, 3),
        quiet=quiet,
        target_p99_ms=TARGET_MS,
    )
    for key in (
        "requested_to_sse",
        "resolve_to_continue_sse",
        "resolve_to_continue_server",
        "resolve_to_running_sse",
    ):
        print(key, result[key], flush=True)
    if args.json:
        save_json(args.json, result)


if __name__ == "__main__":
    main()
