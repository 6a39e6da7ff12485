"""Helpers every real-CLI test uses: the run's events and worktree, waiting on the fake model
server, approvals and the process table (for the no-orphan checks)."""

from __future__ import annotations

import os
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
