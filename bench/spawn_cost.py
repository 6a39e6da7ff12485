"""What starting one child costs a server-sized process: uvloop's spawn (fork) against
``codeyard.agents.piped`` (``Popen``, vfork), under uvloop, the server's loop.

The process first grows to ``--rss`` MB of touched memory (the server is ~140-190 MB resident),
then starts ``/bin/true`` ``--spawns`` times each way, alternating, each awaited to its exit.
Wall time per spawn-to-exit, and the parent's own CPU per spawn (a fork's page-table copy and
the copy-on-write faults after it land on the parent). A second table repeats it at 0 MB extra,
to show that the fork's cost grows with the parent and vfork's does not.

    .venv/bin/python bench/spawn_cost.py [--spawns 200] [--rss 150]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvloop

from bench._common import Interference, machine
from codeyard.agents import piped

PAGE = 4096


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2**20


async def _one(use_piped: bool) -> tuple[float, float]:
    create = piped.create_subprocess_exec if use_piped else asyncio.create_subprocess_exec
    cpu, wall = _cpu(), time.perf_counter()
    proc = await create("/bin/true", stdin=asyncio.subprocess.DEVNULL)
    await proc.wait()
    return (time.perf_counter() - wall) * 1000, (_cpu() - cpu) * 1000


async def _measure(spawns: int, ballast: bytearray | None) -> dict[str, list[tuple[float, float]]]:
    out: dict[str, list[tuple[float, float]]] = {"fork (uvloop)": [], "vfork (piped)": []}
    for _ in range(5):  # warm-up
        await _one(True)
        await _one(False)
    for i in range(spawns):
        for use_piped in (i % 2 == 0, i % 2 == 1):
            if ballast is not None:  # the server keeps writing its memory between spawns
                for off in range(0, len(ballast), PAGE * 16):
                    ballast[off] = (ballast[off] + 1) & 0xFF
            key = "vfork (piped)" if use_piped else "fork (uvloop)"
            out[key].append(await _one(use_piped))
    return out


def _row(name: str, rss: float, samples: list[tuple[float, float]]) -> str:
    wall = sorted(s[0] for s in samples)
    cpu = [s[1] for s in samples]
    p90 = wall[int(0.9 * (len(wall) - 1))]
    return (
        f"| {name} | {rss:.0f} | {len(samples)} | {statistics.median(wall):.2f} | {p90:.2f} "
        f"| {statistics.mean(cpu):.2f} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spawns", type=int, default=200, help="spawns each way (default 200)")
    ap.add_argument("--rss", type=int, default=150, help="MB of touched memory (default 150)")
    args = ap.parse_args()
    mon = Interference()
    mon.start()
    lines = [
        "| spawn | parent RSS MB | spawns | wall p50 ms | wall p90 ms | parent CPU ms/spawn |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    small = uvloop.run(_measure(args.spawns, None))
    rss = _rss_mb()
    for name, samples in small.items():
        lines.append(_row(name, rss, samples))
    ballast = bytearray(os.urandom(1)) * (args.rss * 2**20)
    for off in range(0, len(ballast), PAGE):
        ballast[off] = 1
    big = uvloop.run(_measure(args.spawns, ballast))
    rss = _rss_mb()
    for name, samples in big.items():
        lines.append(_row(name, rss, samples))
    foreign = mon.stop()
    m = machine()
    host = f"{m['nproc']} CPUs ({m['cpu']}), {m['mem_gb']} GB, Python {m['python']}"
    print(
        f"spawn_cost: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; {host}; "
        f"load average {os.getloadavg()[0]:.2f}; foreign CPU {foreign:.0%}"
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
