"""Preparations are bounded per host (issue 15 target 3): with ``preparation_concurrency`` K,
N runs never have more than K ``git worktree add`` running at once, they start first come first
served, all of them complete, and preparation's git runs niced like the run's processes.

Real parts: the app over httpx, SQLite, real git with a real ``post-checkout`` hook (which
``git worktree add`` runs) that notes when each add starts and ends, its own niceness and its
session's autogroup's.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from codeyard.config import Settings
from codeyard.run_workspace.prepare import Preparations
from codeyard.sandbox import priority
from tests.conftest import TOKEN, make_repo, open_api
from tests.integration.test_sandbox_api import script_run

pytestmark = pytest.mark.anyio

RUNS, BOUND = 6, 2
#: The hook notes its repository, start and end (monotonic seconds) and its niceness; it
#: sleeps so that adds that may overlap do.
HOOK = """#!/bin/sh
start=$(cut -d' ' -f1 /proc/uptime)
sleep 1.5
nice=$(sed 's/.*) //' /proc/$$/stat | cut -d' ' -f17)
group=$(sed 's/.* nice //' /proc/self/autogroup)
echo "{name} $start $(cut -d' ' -f1 /proc/uptime) $nice $group" >> {log}
"""


def _repo(tmp_path: Path, name: str, log: Path) -> Path:
    repo = make_repo(tmp_path / name)
    hook = repo / ".git" / "hooks" / "post-checkout"
    hook.write_text(HOOK.format(name=name, log=log))
    hook.chmod(0o755)
    return repo


async def test_preparations_wait_in_line_within_the_bound(tmp_path: Path) -> None:
    log = tmp_path / "adds.log"
    repos = [_repo(tmp_path, f"repo{i}", log) for i in range(RUNS)]
    settings = Settings(
        data_dir=tmp_path / "data",
        admin_token=TOKEN,
        max_concurrent_runs=RUNS,
        preparation_concurrency=BOUND,
        agent_niceness=5,
    )
    async for api in open_api(settings):
        await api.request(
            "PUT", "/api/settings", json={"sandbox": "off"}
        )  # the bound, not bwrap, here
        ids = []
        for repo in repos:
            resp = await api.post("/api/runs", json=script_run(repo, {"bash": "true"}))
            assert resp.status_code == 201, resp.text
            ids.append(resp.json()["id"])
        for run_id in ids:
            await api.wait_status(run_id, "review", timeout=60)
    adds = [line.split() for line in log.read_text().splitlines()]
    assert len(adds) == RUNS  # every preparation completed
    spans = [(float(start), float(end)) for _, start, end, *_ in adds]
    most = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert most == BOUND  # the bound was reached, and never passed
    start = {name: float(s) for name, s, *_ in adds}
    # First come, first served (within git's own jitter: a wave's two adds start together).
    assert all(start[f"repo{i}"] < start[f"repo{i + 1}"] + 0.1 for i in range(RUNS - 1)), adds
    assert {nice for *_, nice, _ in adds} == {"5"}  # the git of preparation, niced
    if priority.autogroups():  # and its session's group (here as root: no rate limit)
        assert {group for *_, group in adds} == {"5"}


async def test_a_freed_slot_goes_to_the_oldest_waiter_and_a_cancelled_one_leaves_the_line() -> None:
    slots = Preparations(1)
    order: list[int] = []
    gate = asyncio.Event()

    async def prepare(n: int) -> None:
        async with slots.slot():
            order.append(n)
            await gate.wait()

    first = asyncio.create_task(prepare(0))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(prepare(n)) for n in (1, 2, 3)]
    await asyncio.sleep(0.01)
    assert order == [0] and slots.active == 1 and slots.waiting == 3
    waiting[0].cancel()  # gives up its place in line
    await asyncio.sleep(0.01)
    assert slots.waiting == 2
    gate.set()
    await asyncio.gather(first, *waiting[1:])
    assert order == [0, 2, 3] and slots.active == 0 and slots.waiting == 0
