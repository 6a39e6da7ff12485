"""Helpers every real-CLI test uses: the run's events and worktree, waiting on the fake model
server, approvals and the process table (for the no-orphan checks)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

from codeyard.testing.fake_llm import FakeLLM
from tests.conftest import Api

#: Seconds to wait for something an agent is about to do (generous: CI machines are shared).
WAIT = 90.0


async def events(api: Api, run_id: str, types: str | None = None) -> list[dict[str, Any]]:
    query = f"?limit=500&types={types}" if types else "?limit=500"
    return list((await api.get(f"/api/runs/{run_id}/events{query}")).json()["data"])


async def by_type(api: Api, run_id: str) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for event in await events(api, run_id):
        found.setdefault(event["type"], []).append(event["data"])
    return found


def worktree(api: Api, run: dict[str, Any]) -> Path:
    roots = list(Path(api.services.settings.worktree_root).glob(f"*/{run['number']}-*/*"))
    assert len(roots) == 1, roots
    return roots[0]


def processes_in(root: Path) -> list[tuple[int, str]]:
    """Live processes whose working directory is inside ``root`` (pid, command line)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if stat[stat.rfind(")") + 2] == "Z":
            continue
        if cwd == str(root) or cwd.startswith(str(root) + "/"):
            found.append((int(entry.name), cmd))
    return found


async def wait_for_process(root: Path, needle: str) -> None:
    """Poll the process table (nothing to wait on instead) until ``needle`` runs in ``root``."""
    for _ in range(int(WAIT * 10)):
        if any(needle in cmd for _, cmd in processes_in(root)):
            return
        await anyio.sleep(0.1)
    raise AssertionError(f"'{needle}' never ran in {root}: {processes_in(root)}")


async def wait_model_calls(fake: FakeLLM, count: int) -> None:
    await anyio.to_thread.run_sync(fake.wait_for_model_calls, count, WAIT)


async def approvals(api: Api, run_id: str) -> list[dict[str, Any]]:
    """The run's pending approvals, once there is one (read at each of the run's events)."""

    async def read() -> list[dict[str, Any]] | None:
        url = f"/api/approvals?status=pending&run_id={run_id}"
        return list((await api.get(url)).json()["data"]) or None

    found = await api.until(run_id, read, WAIT)
    if found is None:
        raise TimeoutError(f"no pending approval of run {run_id} within {WAIT} s")
    return found


async def end_recorded_while_exiting(
    api: Api,
    turn_module: Any,
    monkeypatch: Any,
    start: Callable[[], Awaitable[dict[str, Any]]],
    cli: str,
) -> None:
    """An adapter whose turn end says only the exit is left (``TurnEnd.exiting``): with its
    stop held, the run reaches review and ``turn.completed`` is stored while the CLI (a process
    whose command line holds ``cli``) is still alive in the worktree; the run's task lives until
    it is gone, and nothing is left after. ``start`` creates a run whose model says "Hi there."."""
    exit_held = asyncio.Event()
    real = turn_module.stop_turn

    async def held_stop(stop: Any, *, interrupted: bool) -> None:
        if not interrupted:  # the stop after the turn's end: the CLI waits on its open stdin
            await asyncio.wait_for(exit_held.wait(), 30)
        await real(stop, interrupted=interrupted)

    monkeypatch.setattr(turn_module, "stop_turn", held_stop)
    run = await start()
    try:
        done = await api.wait_status(run["id"], "review", "failed", timeout=25)
        assert done["status"] == "review", done
        tree = worktree(api, run)
        assert [cmd for _, cmd in processes_in(tree) if cli in cmd]  # not exited yet
        assert api.services.executor.is_live(run["id"])
        completed = (await events(api, run["id"], "turn.completed"))[0]["data"]
        assert completed["result"] == "Hi there."
    finally:
        exit_held.set()
    await api.services.executor.wait_stopped(run["id"])
    assert processes_in(tree) == []
