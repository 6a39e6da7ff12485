"""Start-up time of ``codeyard serve``: process spawn to the first 200 from ``/api/health``.

The real console script (``.venv/bin/codeyard serve --port P --data-dir D``) is spawned on a fresh
data directory (database created and migrated) and again on an existing one, ``--repeat`` times
each; ``/api/health`` is polled every ~2 ms with a bare socket (no client start-up in the clock).
Between tries the server is stopped with SIGINT and waited for.

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
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    OUT,
    TOKEN,
    free_port,
    fresh_dir,
    machine,
    stop,
    wait_healthy,
    wait_quiet,
    write_json,
)

CODEYARD = Path(sys.executable).parent / "codeyard"


def once(data_dir: Path, log: Path) -> float:
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
        finally:
            stop(proc)
    return t1 - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", type=Path, default=OUT / "startup.json")
    args = ap.parse_args()
    base = fresh_dir("startup")
    log = base / "server.log"
    once(base / "warmup", log)  # warm the OS page cache for the interpreter and libraries
    quiet = wait_quiet()
    fresh: list[float] = []
    for k in range(args.repeat):
        d = base / f"fresh-{k}"
        shutil.rmtree(d, ignore_errors=True)
        fresh.append(once(d, log))
    existing_dir = base / "existing"
    once(existing_dir, log)  # create it
    existing = [once(existing_dir, log) for _ in range(args.repeat)]
    result: dict[str, Any] = {
        "fresh_median_s": round(statistics.median(fresh), 3),
        "fresh_all_s": [round(x, 3) for x in fresh],
        "existing_median_s": round(statistics.median(existing), 3),
        "existing_all_s": [round(x, 3) for x in existing],
        **quiet,
    }
    print(
        f"codeyard serve to healthy: fresh data dir median {result['fresh_median_s']} s "
        f"{result['fresh_all_s']}; existing median {result['existing_median_s']} s "
        f"{result['existing_all_s']}"
    )
    write_json(args.json, {"machine": machine(), **result})


if __name__ == "__main__":
    main()
