"""How promptly a server-like process wakes while run processes saturate the cores, by the CPU
policy the run processes are started with (issue 15 target 3: the control plane first).

A probe stands in for the server's event loop: it sleeps 2 ms, notes how late it woke, works
0.2 ms, and again, for ``--seconds``; it stays at the niceness it was started with. Meanwhile
``--burners`` busy loops run, each the leader of its own session as a run's process group is
(``setsid``: with ``sched_autogroup`` each session is a scheduling group of its own). Each
policy is one row: the burners started plain, ``nice -n 10``, ``nice`` plus the session's
autogroup lowered, ``nice 19`` likewise, ``SCHED_BATCH``, ``SCHED_IDLE``, and Codeyard's own
launcher prefix (``codeyard.sandbox.priority.prefix``). Wake-up lateness p50/p99/max in ms.

    .venv/bin/python bench/priority.py [--burners 8] [--seconds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codeyard.sandbox import priority

BUSY = ["/bin/sh", "-c", "while :; do :; done"]


def _autogroup(n: int) -> list[str]:
    return ["/bin/sh", "-c", f'echo {n} > /proc/self/autogroup; exec "$@"', "ag"]


POLICIES: dict[str, list[str]] = {
    "none (idle machine)": [],
    "plain": [],
    "nice 10": ["nice", "-n", "10"],
    "nice 10 + autogroup 10": [*_autogroup(10), "nice", "-n", "10"],
    "nice 19 + autogroup 19": [*_autogroup(19), "nice", "-n", "19"],
    "SCHED_BATCH": ["chrt", "--batch", "0"],
    "SCHED_IDLE": ["chrt", "--idle", "0"],
    "SCHED_IDLE + autogroup 19": [*_autogroup(19), "chrt", "--idle", "0"],
    "codeyard (agent_niceness 10)": priority.prefix(priority.DEFAULT_NICENESS),
}


def probe(seconds: float) -> list[float]:
    late: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        before = time.monotonic()
        time.sleep(0.002)
        late.append((time.monotonic() - before - 0.002) * 1000)
        spin = time.monotonic() + 0.0002
        while time.monotonic() < spin:
            pass
    return late


def row(name: str, burners: int, seconds: float) -> tuple[str, float, float, float]:
    procs = []
    if name != "none (idle machine)":
        procs = [
            subprocess.Popen([*POLICIES[name], *BUSY], start_new_session=True)
            for _ in range(burners)
        ]
    try:
        time.sleep(0.3)
        late = sorted(probe(seconds))
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
    p99 = late[int(len(late) * 0.99)]
    return name, statistics.median(late), p99, late[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burners", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    try:
        os.setsid()  # the probe's own session (autogroup), as ``codeyard serve`` has
    except PermissionError:  # already a group leader (a shell's job): again, under setsid
        os.execvp("setsid", ["setsid", "-w", sys.executable, *sys.argv])
    print(
        f"{os.cpu_count()} CPUs, {args.burners} busy run processes, "
        f"autogroups {priority.autogroups()}"
    )
    print("| run processes started with | late p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|")
    for name in POLICIES:
        n, p50, p99, worst = row(name, args.burners, args.seconds)
        print(f"| {n} | {p50:.2f} | {p99:.2f} | {worst:.1f} |", flush=True)


if __name__ == "__main__":
    main()
