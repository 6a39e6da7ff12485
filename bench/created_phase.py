"""Four steps of a new run before its agent starts (issue 15, the overhead's "created" part),
each as it was and as it is, A/B alternating in one process (uvloop, as the server runs):

- ``head``: ``POST /api/runs`` with a ``repo_path``: the work tree's top and HEAD's commit
  (``git.work_tree_commit``): one git process per run (``git``: what git found is forgotten
  before each call) or HEAD read from the repository's files (``workspace.head_files``).
- ``base``: a project run's base commit for ``HEAD``: ``git.resolve_commit`` (a process) or
  ``run_creation._base_commit`` (the files).
- ``sandbox``: ``ensure_runnable``'s check of the cached bwrap probe in a thread trip
  (``asyncio.to_thread``) or on the loop.
- ``intent``: a new run's take (``executor.local.take_run``) and its preparation's intent
  (``runs.update_fields(branch, workspace_intent)``) in two writer transactions (as it is) or in
  one; ``one+reads`` adds the project and repository reads the take would need to write it
  (measured, not adopted: it saves ~0.05 ms of CPU once those reads are in).

Per call: wall, the loop thread's CPU, the process's CPU (the loop, git's waiter threads, the
SQLite driver) and git's own CPU (children); per step, the median of the rounds with the
smallest and largest round.

    .venv/bin/python bench/created_phase.py [--rounds 14] [--only head]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import resource
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import fresh_dir, machine, make_repo
from bench.ingest import PROJECT_ID, run_values
from codeyard.domain.events import utc_now
from codeyard.executor.local import take_run
from codeyard.sandbox import Sandbox
from codeyard.services.run_creation import _base_commit
from codeyard.store import projects, runs
from codeyard.store.db import create_engine, migrate
from codeyard.store.writer import Tx, Writer
from codeyard.workspace import head_files
from codeyard.workspace.git import resolve_commit, work_tree_commit

Batch = Callable[[], Awaitable[None]]
INTENT = {"branch": "codeyard/1-x", "repos": {"repo_1": {"path": "/tmp/x/1-x/r", "new": True}}}


def _children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


async def _measure(
    variants: dict[str, Batch], calls: int, rounds: int
) -> dict[str, list[tuple[float, ...]]]:
    """Each variant's per-call (wall, loop CPU, process CPU, git CPU) in ms, per round; the
    order of the variants turns around every round."""
    out: dict[str, list[tuple[float, ...]]] = {name: [] for name in variants}
    names = list(variants)
    for i in range(rounds):
        for name in names if i % 2 == 0 else names[::-1]:
            w, t, p, c = (
                time.perf_counter(),
                time.thread_time(),
                time.process_time(),
                _children_cpu(),
            )
            await variants[name]()
            marks = (
                time.perf_counter() - w,
                time.thread_time() - t,
                time.process_time() - p,
                _children_cpu() - c,
            )
            out[name].append(tuple(x / calls * 1000 for x in marks))
    return out


async def head(root: Path, rounds: int) -> dict[str, list[tuple[float, ...]]]:
    repo = make_repo(root / "repo")
    await work_tree_commit(repo, "HEAD")
    calls = 30

    async def old() -> None:
        for _ in range(calls):
            head_files.forget(repo)
            assert await work_tree_commit(repo, "HEAD") is not None

    async def new() -> None:
        for _ in range(calls):
            assert await work_tree_commit(repo, "HEAD") is not None

    return await _measure({"git": old, "files": new}, calls, rounds)


async def base(root: Path, rounds: int) -> dict[str, list[tuple[float, ...]]]:
    repo = make_repo(root / "project-repo")
    calls = 30

    async def old() -> None:
        for _ in range(calls):
            assert await resolve_commit(repo, "HEAD") is not None

    async def new() -> None:
        for _ in range(calls):
            assert await _base_commit(repo, "HEAD") is not None

    return await _measure({"git": old, "files": new}, calls, rounds)


async def sandbox(root: Path, rounds: int) -> dict[str, list[tuple[float, ...]]]:
    box = Sandbox()
    box.probe()
    calls = 500

    async def old() -> None:
        for _ in range(calls):
            await asyncio.to_thread(box.check)

    async def new() -> None:
        for _ in range(calls):
            probed = box.probed()
            box.check(probed if probed is not None else await asyncio.to_thread(box.probe))

    return await _measure({"thread": old, "loop": new}, calls, rounds)


async def intent(root: Path, rounds: int) -> dict[str, list[tuple[float, ...]]]:
    engine = create_engine(f"sqlite+aiosqlite:///{root / 'codeyard.db'}")
    await migrate(engine)
    writer = Writer(engine, lambda _e: None)
    await writer.start()
    now = utc_now()
    project = {"id": PROJECT_ID, "name": "b", "slug": "b", "created_at": now, "updated_at": now}
    await writer.run(lambda tx: projects.insert_project(tx, project))
    calls, made = 20, [0]
    queued: list[str] = []

    async def insert(tx: Tx) -> None:
        for _ in range(calls):
            made[0] += 1
            run_id = f"run_{made[0]}"
            values = {**run_values(), "id": run_id, "number": made[0], "status": "queued"}
            await runs.insert(tx, values)
            queued.append(run_id)

    async def write_intent(tx: Tx, run_id: str) -> None:
        await runs.update_fields(tx, run_id, branch=INTENT["branch"], workspace_intent=INTENT)

    async def two() -> None:
        for run_id in queued:
            await writer.run(functools.partial(take_run, run_id=run_id))
            await writer.run(functools.partial(write_intent, run_id=run_id))

    async def one(reads: bool) -> None:
        for run_id in queued:

            async def job(tx: Tx, run_id: str = run_id) -> None:
                await take_run(tx, run_id)
                if reads:
                    await projects.get_project(tx.conn, PROJECT_ID)
                    await projects.repos_of(tx.conn, PROJECT_ID)
                await write_intent(tx, run_id)

            await writer.run(job)

    try:
        variants: dict[str, Batch] = {
            "two": two,
            "one": functools.partial(one, False),
            "one+reads": functools.partial(one, True),
        }
        out: dict[str, list[tuple[float, ...]]] = {name: [] for name in variants}
        names = list(variants)
        for i in range(rounds):
            for name in names if i % 2 == 0 else names[::-1]:
                queued.clear()
                await writer.run(insert)
                got = await _measure({name: variants[name]}, calls, 1)
                out[name] += got[name]
        return out
    finally:
        await writer.stop()
        await engine.dispose()


STEPS = {"head": head, "base": base, "sandbox": sandbox, "intent": intent}


def report(step: str, found: dict[str, list[tuple[float, ...]]]) -> None:
    for name, rows in found.items():
        cells = []
        for k, label in enumerate(("wall", "loop CPU", "process CPU", "git CPU")):
            xs = [r[k] for r in rows]
            cells.append(f"{label} {statistics.median(xs):.3f} ({min(xs):.3f}-{max(xs):.3f})")
        print(
            f"{step:8} {name:10} ms per call, median (min-max) of {len(rows)}: " + ", ".join(cells)
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=14)
    ap.add_argument("--only", action="append", choices=sorted(STEPS))
    args = ap.parse_args()
    root = fresh_dir("created-phase")
    print(f"bench/created_phase.py; {machine()}", flush=True)
    for step in args.only or list(STEPS):
        (root / step).mkdir()
        report(step, uvloop.run(STEPS[step](root / step, args.rounds)))


if __name__ == "__main__":
    main()
