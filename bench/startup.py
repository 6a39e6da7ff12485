"""Start-up time of ``codeyard serve``: process spawn to the first 200 from ``/api/health``.

The real console script (``.venv/bin/codeyard serve --port P --data-dir D``) is spawned on a fresh
data directory (database created and migrated) and again on an existing one, ``--repeat`` times
each; ``/api/health`` is polled every ~2 ms with a bare socket (no client start-up in the clock).
Between tries the server is stopped with SIGINT and waited for. The server's own CPU time
(user + system) up to that first 200 is recorded too: unlike wall time, it does not grow when
other work shares the machine.

    .venv/bin/python bench/startup.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    OUT,
    TOKEN,
    free_port,
    fresh_dir,
    guarded,
    machine,
    stop,
    wait_healthy,
    write_json,
)

CODEYARD = Path(sys.executable).parent / "codeyard"


def _cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def once(data_dir: Path, log: Path) -> tuple[float, float]:
    """(wall seconds from spawn to healthy, CPU seconds the server used by then)."""
    port = free_port()
    env = {**os.environ, "CODEYARD_ADMIN_TOKEN": TOKEN}
    with log.open("a") as out:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [str(CODEYARD), "serve", "--port", str(port), "--data-dir", str(data_dir)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            t1 = wait_healthy(port, proc, 30)
            cpu = _cpu_seconds(proc.pid)
        finally:
            stop(proc)
    return t1 - t0, cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", type=Path, default=OUT / "startup.json")
    args = ap.parse_args()
    base = fresh_dir("startup")
    log = base / "server.log"
    once(base / "warmup", log)  # warm the OS page cache for the interpreter and libraries
    foreign: list[float] = []

    def fresh_once(k: int) -> tuple[float, float]:
        d = base / f"fresh-{k}-{len(foreign)}"
        shutil.rmtree(d, ignore_errors=True)
        return once(d, log)

    def one(fn: Callable[[], tuple[float, float]]) -> tuple[float, float]:
        value, seen = guarded(fn)
        foreign.append(seen["foreign_cpu"])
        return value

    fresh = [one(lambda k=k: fresh_once(k)) for k in range(args.repeat)]
    existing_dir = base / "existing"
    once(existing_dir, log)  # create it
    existing = [one(lambda: once(existing_dir, log)) for _ in range(args.repeat)]
    result: dict[str, Any] = {}
    for name, tries in (("fresh", fresh), ("existing", existing)):
        result[f"{name}_median_s"] = round(statistics.median(w for w, _ in tries), 3)
        result[f"{name}_all_s"] = [round(w, 3) for w, _ in tries]
        result[f"{name}_cpu_median_s"] = round(statistics.median(c for _, c in tries), 3)
    result["foreign_cpu"] = foreign
    print(
        f"codeyard serve to healthy: fresh data dir median {result['fresh_median_s']} s "
        f"{result['fresh_all_s']}; existing median {result['existing_median_s']} s "
        f"{result['existing_all_s']}; server CPU to healthy median "
        f"{result['fresh_cpu_median_s']} s / {result['existing_cpu_median_s']} s"
    )
    write_json(args.json, {"machine": machine(), **result})


if __name__ == "__main__":
    main()
