"""Start-up time of ``codeyard serve``: process spawn to the first 200 from ``/api/health``.

The real console script (``.venv/bin/codeyard serve --port P --data-dir D``) is spawned on a fresh
data directory (database created and migrated) and again on an existing one, ``--repeat`` times
each; ``/api/health`` is polled every ~2 ms with a bare socket (no client start-up in the clock).
Between tries the server is stopped with SIGINT and waited for. The server's own CPU time
(user + system) up to that first 200 is recorded too: unlike wall time, it does not grow when
other work shares the machine.

In the same run, the import floor (issue 15's target: start-up at most 1.3x of it): alternating
fresh interpreters that each report their own CPU time (user + system, interpreter start
included) after importing either the framework alone (``FLOOR``) or the serve path
(``SERVE_PATH``: what ``codeyard serve`` imports, and the app created). Both are printed side
by side with their ratio, and the serve process's CPU to its first 200 against the same floor.

Every interpreter here runs with its bytecode cached (``PYTHONPYCACHEPREFIX`` under
``bench/out``, ``PYTHONDONTWRITEBYTECODE`` dropped), as an installed Codeyard runs: the
framework's ``.pyc`` files come with its wheels, and without a cache Codeyard's own ~260 modules
were compiled from source on every start, ~0.15 s of CPU charged to the serve path only.

With ``--profile N`` (default 3) the serve path and the floor also run N times each under
``python -X importtime``; each module's self time is the minimum of its N runs, and what the
serve path imports beyond the floor is ranked (Codeyard's modules, then third-party ones): the
profile of what remains above the target.

    .venv/bin/python bench/startup.py [--repeat 5] [--import-pairs 7] [--profile 3]
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
    Interference,
    free_port,
    fresh_dir,
    guarded,
    machine,
    stop,
    wait_healthy,
    write_json,
)

CODEYARD = Path(sys.executable).parent / "codeyard"
TARGET_RATIO = 1.3

FLOOR = (
    "import fastapi, uvicorn, sqlalchemy.ext.asyncio, aiosqlite, pydantic_settings, sse_starlette"
)
#: What ``codeyard serve`` imports: the console script's serve command (not the client CLI),
#: the server, and the app it creates.
SERVE_PATH = (
    "import codeyard.cli.serve, codeyard.server\nfrom codeyard.app import create_app\ncreate_app()"
)
#: The serve path with every router loaded, as the app was before routers loaded lazily.
EAGER = SERVE_PATH.replace(
    "create_app()", "from codeyard.api import lazy\nlazy.load_all(create_app())"
)
_REPORT = (
    "\nimport resource as _r\n_u = _r.getrusage(_r.RUSAGE_SELF)\nprint(_u.ru_utime + _u.ru_stime)"
)


def _env(**extra: str) -> dict[str, str]:
    """The environment of every measured interpreter: bytecode cached in ``bench/out``."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPYCACHEPREFIX": str(OUT / "pycache"), **extra}


def import_cpu(code: str) -> float:
    """CPU seconds of a fresh interpreter running ``code`` (start-up included)."""
    out = subprocess.run(
        [sys.executable, "-c", code + _REPORT],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env=_env(PYTHONWARNINGS="ignore"),
    )
    return float(out.stdout.strip().splitlines()[-1])


def import_pairs(pairs: int) -> dict[str, Any]:
    """Floor and serve-path import CPU in alternating pairs (which goes first alternates)."""
    floor: list[float] = []
    ours: list[float] = []
    eager: list[float] = []
    import_cpu(FLOOR)  # warm the page cache
    import_cpu(EAGER)
    for k in range(pairs):
        order = ((floor, FLOOR), (ours, SERVE_PATH), (eager, EAGER))
        for into, code in order if k % 2 == 0 else reversed(order):
            into.append(import_cpu(code))
    f, o, e = statistics.median(floor), statistics.median(ours), statistics.median(eager)
    return {
        "all_routers_cpu_median_s": round(e, 3),
        "all_routers_ratio": round(e / f, 2),
        "floor_cpu_median_s": round(f, 3),
        "floor_cpu_all_s": [round(x, 3) for x in floor],
        "serve_path_cpu_median_s": round(o, 3),
        "serve_path_cpu_all_s": [round(x, 3) for x in ours],
        "import_ratio": round(o / f, 2),
        "import_pair_ratios": [round(b / a, 2) for a, b in zip(floor, ours, strict=True)],
    }


def _importtime(code: str) -> dict[str, int]:
    """Self microseconds of each module a fresh interpreter imports running ``code``."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env=_env(PYTHONWARNINGS="ignore"),
    )
    found: dict[str, int] = {}
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "imported package" in line:
            continue
        own, _cumulative, name = line.removeprefix("import time:").split("|", 2)
        found[name.strip()] = int(own)
    return found


def import_profile(runs: int, top: int = 25) -> dict[str, Any]:
    """What the serve path imports beyond the floor, ranked by self time (min of ``runs``)."""
    floor: dict[str, int] = {}
    ours: dict[str, int] = {}
    for _ in range(runs):
        for into, code in ((floor, FLOOR), (ours, SERVE_PATH)):
            for name, us in _importtime(code).items():
                into[name] = min(us, into.get(name, us))
    beyond = {name: us for name, us in ours.items() if name not in floor}
    codeyard = {n: us for n, us in beyond.items() if n == "codeyard" or n.startswith("codeyard.")}
    third = {n: us for n, us in beyond.items() if n not in codeyard}
    by_top: dict[str, int] = {}
    for name, us in third.items():
        by_top[name.split(".")[0]] = by_top.get(name.split(".")[0], 0) + us

    def ranked(values: dict[str, int], n: int) -> list[tuple[str, float]]:
        best = sorted(values.items(), key=lambda kv: -kv[1])[:n]
        return [(name, round(us / 1000, 1)) for name, us in best]

    return {
        "profile_runs": runs,
        "floor_self_ms": round(sum(floor.values()) / 1000, 1),
        "serve_path_self_ms": round(sum(ours.values()) / 1000, 1),
        "codeyard_modules": len(codeyard),
        "codeyard_self_ms": round(sum(codeyard.values()) / 1000, 1),
        "third_party_beyond_floor_modules": len(third),
        "third_party_beyond_floor_self_ms": round(sum(third.values()) / 1000, 1),
        "top_codeyard_ms": ranked(codeyard, top),
        "top_third_party_packages_ms": ranked(by_top, top),
    }


def _cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def once(data_dir: Path, log: Path) -> tuple[float, float]:
    """(wall seconds from spawn to healthy, CPU seconds the server used by then)."""
    port = free_port()
    env = _env(CODEYARD_ADMIN_TOKEN=TOKEN)
    with log.open("a") as out:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [str(CODEYARD), "serve", "--port", str(port), "--data-dir", str(data_dir)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
        try:
            t1 = wait_healthy(port, proc, 120)  # generous: a loaded machine
            cpu = _cpu_seconds(proc.pid)
        finally:
            stop(proc)
    return t1 - t0, cpu


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--import-pairs", type=int, default=7)
    ap.add_argument(
        "--attempts", type=int, default=3, help="tries per spawn while other work disturbs it"
    )
    ap.add_argument(
        "--profile", type=int, default=3, help="-X importtime runs of each side (0: none)"
    )
    ap.add_argument("--json", type=Path, default=OUT / "startup.json")
    args = ap.parse_args()
    interference = Interference()
    interference.start()
    imports = import_pairs(args.import_pairs)
    imports["import_foreign_cpu"] = round(interference.stop(), 3)
    profile = import_profile(args.profile) if args.profile > 0 else {}
    base = fresh_dir("startup")
    log = base / "server.log"
    once(base / "warmup", log)  # warm the OS page cache for the interpreter and libraries
    foreign: list[float] = []

    def fresh_once(k: int) -> tuple[float, float]:
        d = base / f"fresh-{k}-{len(foreign)}"
        shutil.rmtree(d, ignore_errors=True)
        return once(d, log)

    def one(fn: Callable[[], tuple[float, float]]) -> tuple[float, float]:
        value, seen = guarded(fn, attempts=args.attempts)
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
    result.update(imports)
    result["profile"] = profile
    floor = imports["floor_cpu_median_s"]
    for name in ("fresh", "existing"):
        result[f"{name}_cpu_ratio"] = round(result[f"{name}_cpu_median_s"] / floor, 2)
    result["target_ratio"] = TARGET_RATIO
    result["import_met"] = imports["import_ratio"] <= TARGET_RATIO
    print(
        f"codeyard serve to healthy: fresh data dir median {result['fresh_median_s']} s "
        f"{result['fresh_all_s']}; existing median {result['existing_median_s']} s "
        f"{result['existing_all_s']}; server CPU to healthy median "
        f"{result['fresh_cpu_median_s']} s / {result['existing_cpu_median_s']} s"
    )
    print(
        f"import CPU: framework floor {floor} s, serve path {imports['serve_path_cpu_median_s']} s "
        f"= {imports['import_ratio']}x the floor (target {TARGET_RATIO}x; with every router "
        f"loaded {imports['all_routers_ratio']}x); serve CPU to the "
        f"first 200 {result['fresh_cpu_ratio']}x (fresh) / {result['existing_cpu_ratio']}x "
        f"(existing) the floor"
    )
    if profile:
        print(
            f"import profile (-X importtime, min of {profile['profile_runs']}): self time floor "
            f"{profile['floor_self_ms']} ms, serve path {profile['serve_path_self_ms']} ms; beyond "
            f"the floor: {profile['codeyard_modules']} Codeyard modules "
            f"{profile['codeyard_self_ms']} ms, {profile['third_party_beyond_floor_modules']} "
            f"third-party {profile['third_party_beyond_floor_self_ms']} ms"
        )
        for title, key in (
            ("Codeyard", "top_codeyard_ms"),
            ("third-party", "top_third_party_packages_ms"),
        ):
            print(f"  {title}: " + ", ".join(f"{n} {ms}" for n, ms in profile[key][:15]))
    write_json(args.json, {"machine": machine(), **result})


if __name__ == "__main__":
    main()
