"""Preparations are bounded per host (issue 15 target 3): with ``preparation_concurrency`` K,
N runs never have more than K ``git worktree add`` running at once, they start first come first
served, all of them complete, and preparation's git runs niced like the run's processes. Beyond
the executor's start bound (``STARTS_PER_PREPARATION`` times K) a burst of runs waits in ``queued``,
in order; a run's start slot is given up before its setup script.

Real parts: the app over httpx, SQLite, real git with a real ``post-checkout`` hook (which
``git worktree add`` runs) that notes when each add starts and ends, its own niceness and its
session's autogroup's, or waits for a gate file; real setup scripts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from codeyard.config import Settings
from codeyard.executor.local import STARTS_PER_PREPARATION
from codeyard.run_workspace.admission import Preparations
from codeyard.sandbox import priority
from tests.conftest import TOKEN, Api, make_repo, open_api, running_api
from tests.integration.test_sandbox_api import script_run

pytestmark = pytest.mark.anyio

RUNS, BOUND = 6, 2
#: The hook notes its repository, start and end (monotonic seconds) and its niceness; it
#: sleeps so that adds that may overlap do. The worktree pool's adds (``run_workspace.pool``,
#: made once no run prepares) are not preparations: not noted.
HOOK = """#!/bin/sh
case "$PWD" in */worktree-pool/*) exit 0;; esac
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
    # First come, first served. A wave's two adds start together, in either order (0.16 s
    # apart was seen on a loaded CI machine); waves are the hook's 1.5 s apart.
    assert all(start[f"repo{i}"] < start[f"repo{i + 1}"] + 0.5 for i in range(RUNS - 1)), adds
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


#: Notes that an add started, then waits for the gate file.
GATED_HOOK = """#!/bin/sh
echo started >> {log}
while [ ! -e {gate} ]; do sleep 0.05; done
"""


async def _statuses(api: Api, ids: list[str]) -> list[str]:
    return [(await api.get(f"/api/runs/{run_id}")).json()["status"] for run_id in ids]


async def _until(api: Api, ids: list[str], ok: Callable[[list[str]], bool]) -> list[str]:
    """Poll the runs' statuses until ``ok`` holds (20 s at most)."""
    statuses: list[str] = []
    with anyio.move_on_after(20):
        while not ok(statuses := await _statuses(api, ids)):
            await anyio.sleep(0.05)
    assert ok(statuses), statuses
    return statuses


def _settings(tmp_path: Path, runs: int) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        admin_token=TOKEN,
        max_concurrent_runs=runs,
        preparation_concurrency=1,
    )


async def test_a_burst_of_runs_beyond_the_start_bound_waits_in_queued_in_order(
    tmp_path: Path,
) -> None:
    log, gate = tmp_path / "adds.log", tmp_path / "gate"
    repo = make_repo(tmp_path / "repo")
    hook = repo / ".git" / "hooks" / "post-checkout"
    hook.write_text(GATED_HOOK.format(log=log, gate=gate))
    hook.chmod(0o755)
    runs = STARTS_PER_PREPARATION + 3
    async with running_api(_settings(tmp_path, runs)) as api:
        await api.request("PUT", "/api/settings", json={"sandbox": "off"})
        ids = []
        for _ in range(runs):
            resp = await api.post("/api/runs", json=script_run(repo, {"say": "hi"}))
            assert resp.status_code == 201, resp.text
            assert resp.json()["status"] == "queued"
            ids.append(resp.json()["id"])
        # The first run's worktree add waits at the gate; the next ones wait for the one
        # preparation slot in ``preparing``; the rest are not taken at all.
        starting = STARTS_PER_PREPARATION
        try:
            await _until(api, ids, lambda s: s.count("preparing") >= STARTS_PER_PREPARATION)
            await anyio.sleep(0.5)  # and none more starts meanwhile
            statuses = await _statuses(api, ids)
            assert statuses == ["preparing"] * starting + ["queued"] * (runs - starting)
            assert log.read_text().split() == ["started"]
        finally:
            gate.touch()  # the runs can end (and the app stop) whatever was asserted
        for run_id in ids:
            await api.wait_status(run_id, "review", timeout=60)
        # Taken in the order they were created: their ``preparing`` was written in that order.
        firsts = []
        for run_id in ids:
            events = (await api.get(f"/api/runs/{run_id}/events?limit=500")).json()["data"]
            firsts.append(
                next(
                    e["id"]
                    for e in events
                    if e["type"] == "run.status" and e["data"]["to"] == "preparing"
                )
            )
        assert firsts == sorted(firsts)


async def test_a_run_gives_up_its_start_slot_before_its_setup_script(tmp_path: Path) -> None:
    """Setup scripts run as the run's own processes do: more runs than the start bound may
    be in theirs at once (each gave its slot up with its preparation slot)."""
    log, gate = tmp_path / "setups.log", tmp_path / "gate"
    repo = make_repo(tmp_path / "repo")
    runs = STARTS_PER_PREPARATION + 2
    async with running_api(_settings(tmp_path, runs)) as api:
        await api.request("PUT", "/api/settings", json={"sandbox": "off"})
        resp = await api.post("/api/projects", json={"name": "r", "repos": [{"path": str(repo)}]})
        assert resp.status_code == 201, resp.text
        script = f"echo started >> {log}; while [ ! -e {gate} ]; do sleep 0.05; done"
        repo_id = resp.json()["repos"][0]["id"]
        resp = await api.request("PATCH", f"/api/repos/{repo_id}", json={"setup_script": script})
        assert resp.status_code == 200, resp.text
        ids = []
        for _ in range(runs):
            resp = await api.post("/api/runs", json=script_run(repo, {"say": "hi"}))
            assert resp.status_code == 201, resp.text
            ids.append(resp.json()["id"])
        try:
            with anyio.fail_after(30):
                while not log.exists() or len(log.read_text().split()) < runs:
                    await anyio.sleep(0.05)
            assert await _statuses(api, ids) == ["preparing"] * runs
        finally:
            gate.touch()
        for run_id in ids:
            await api.wait_status(run_id, "review", timeout=60)
