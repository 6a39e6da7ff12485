"""What one ``codeyard.workspace.git.git()`` call costs the server's CPU (issue 15): the event
loop's thread and the waiter threads apart, in a server-sized process under uvloop.

The process first grows to ``--rss`` MB of touched memory (the server is ~140-190 MB resident),
then runs ``git rev-parse HEAD`` in a small repository ``--calls`` times per round through
``git()``, ``--parallel`` at a time, for ``--rounds`` rounds. Each thread's CPU comes from
``/proc/self/task/<tid>/schedstat`` (nanoseconds): ``loop`` is the main thread (the loop),
``threads`` every other one (the waiters: they start git, read its pipes, reap it). ``git`` is
the children's CPU (git itself, not the server's).

``--against FILE`` loads another version of the module (e.g. an older checkout's
``codeyard/workspace/git.py``) beside this one and alternates rounds between the two, so an
A/B runs in one process on the same machine state.

    .venv/bin/python bench/git_call_cost.py [--calls 100] [--rounds 5] [--parallel 1]
        [--rss 150] [--against /work/h105-base/codeyard/workspace/git.py]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import resource
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import ModuleType

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import fresh_dir, machine, make_repo
from codeyard.workspace import git as current

PAGE = 4096
Call = Callable[[], Awaitable[object]]


def _thread_ns() -> tuple[int, int]:
    """(main thread, all other threads) CPU nanoseconds of this process so far."""
    main, others = 0, 0
    me = os.getpid()
    for tid in os.listdir(f"/proc/{me}/task"):
        try:
            with open(f"/proc/{me}/task/{tid}/schedstat") as f:
                ns = int(f.read().split()[0])
        except OSError:
            continue  # a thread that just ended
        if int(tid) == me:
            main += ns
        else:
            others += ns
    return main, others


def _children_s() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


async def _round(call: Call, calls: int, parallel: int) -> tuple[float, float, float, float]:
    """Per call: loop ms, threads ms, git's own ms, wall ms."""

    async def lane(n: int) -> None:
        for _ in range(n):
            await call()

    lanes = [calls // parallel + (i < calls % parallel) for i in range(parallel)]
    main0, others0 = _thread_ns()
    kids0, wall0 = _children_s(), time.perf_counter()
    await asyncio.gather(*(lane(n) for n in lanes))
    main1, others1 = _thread_ns()
    kids1, wall1 = _children_s(), time.perf_counter()
    return (
        (main1 - main0) / calls / 1e6,
        (others1 - others0) / calls / 1e6,
        (kids1 - kids0) / calls * 1000,
        (wall1 - wall0) / calls * 1000,
    )


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("git_against", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


async def _measure(
    variants: dict[str, ModuleType], repo: Path, args: argparse.Namespace
) -> dict[str, list[tuple[float, float, float, float]]]:
    calls: dict[str, Call] = {
        name: (lambda m=module: m.git("rev-parse", "HEAD", cwd=repo))
        for name, module in variants.items()
    }
    for call in calls.values():  # warm-up: threads started, code paths taken once
        await _round(call, 20, args.parallel)
    out: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name in calls}
    for r in range(args.rounds):
        order = list(calls) if r % 2 == 0 else list(reversed(calls))
        for name in order:
            out[name].append(await _round(calls[name], args.calls, args.parallel))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=100, help="git calls per round (default 100)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds per variant (default 5)")
    ap.add_argument("--parallel", type=int, default=1, help="calls in flight (default 1)")
    ap.add_argument("--rss", type=int, default=150, help="MB of touched memory (default 150)")
    ap.add_argument("--against", type=Path, help="another git.py to alternate with")
    args = ap.parse_args()

    ballast = bytearray(args.rss * 2**20)
    for off in range(0, len(ballast), PAGE):
        ballast[off] = 1
    repo = make_repo(fresh_dir("git_call_cost") / "repo")
    variants = {"this": current}
    if args.against is not None:
        variants["against"] = _load(args.against)
    results = uvloop.run(_measure(variants, repo, args))

    m = machine()
    print(
        f"git_call_cost: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; "
        f"{m['nproc']} CPUs, Python {m['python']}; load average {os.getloadavg()[0]:.2f}; "
        f"{args.rounds} rounds x {args.calls} calls, {args.parallel} in flight, "
        f"+{args.rss} MB touched"
    )
    print("| code | loop ms/call | threads ms/call | server ms/call | git ms/call | wall ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, rows in results.items():
        loop, threads, kids, wall = (statistics.median(col) for col in zip(*rows, strict=True))
        spread = [round(r[0] + r[1], 3) for r in rows]
        label = name if name == "this" else f"{name} ({args.against})"
        print(
            f"| {label} | {loop:.3f} | {threads:.3f} | {loop + threads:.3f} | {kids:.2f} "
            f"| {wall:.2f} |  rounds (server): {spread}"
        )
    del ballast


if __name__ == "__main__":
    main()
