"""Sandbox cost: the wall time of a real Codeyard run with the sandbox on against the same run
with it off (issue 11; target: at most 3 % or 30 ms more, whichever is larger).

Same harness as ``bench/overhead.py`` (its variants, its ``run_codeyard`` timing from
``POST /api/runs`` to the ``turn.completed`` SSE frame, the same fake model replies: one tool
call, one answer): one real server process, the ``sandbox`` setting switched through
``PUT /api/settings`` before each run (it is read at each turn), alternating pairs whose order
alternates too, after one uncounted warm-up run of each side.

It also times the fixed cost alone (``spawn_cost``: ``/bin/true`` through the sandbox or not),
which an agent run's variance on a loaded machine can hide.

    .venv/bin/python bench/sandbox_cost.py [--pairs 10] [--only codex] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import Interference, fresh_dir, machine, make_repo, wait_quiet, write_json
from bench._overhead_variants import VARIANTS, Variant
from bench.overhead import run_codeyard
from codeyard.sandbox import Sandbox, contain, probe
from codeyard.testing.fake_llm import FakeLLM
from tests.support.server import ServerProcess

TARGET_RATIO = 1.03
TARGET_MS = 30.0


async def set_sandbox(server: ServerProcess, mode: str) -> None:
    async with server.client() as api:
        resp = await api.put("/api/settings", json={"sandbox": mode})
        resp.raise_for_status()
        assert resp.json()["sandbox"] == mode


async def measure(v: Variant, pairs: int, root: Path) -> dict[str, Any]:
    repo = make_repo(root / f"{v.provider}-repo")
    home = root / f"{v.provider}-home"
    home.mkdir(parents=True, exist_ok=True)
    server = ServerProcess(root / f"{v.provider}-data")
    server.start()
    rows: list[dict[str, float]] = []
    try:
        with FakeLLM() as fake:
            for mode in ("on", "off"):  # warm-up, not counted
                await set_sandbox(server, mode)
                await run_codeyard(v, fake, server, repo, home)
            quiet = wait_quiet(max_wait=20)
            mon = Interference()
            mon.start()
            for i in range(pairs):
                order = ("on", "off") if i % 2 == 0 else ("off", "on")
                row: dict[str, float] = {}
                for mode in order:
                    await set_sandbox(server, mode)
                    row[mode] = (await run_codeyard(v, fake, server, repo, home))["seconds"]
                rows.append(row)
                print(f"  pair {i + 1}: on {row['on']:.3f} s, off {row['off']:.3f} s", flush=True)
            foreign = mon.stop()
    finally:
        server.stop()
    on = [r["on"] for r in rows]
    off = [r["off"] for r in rows]
    cost_ms = [(a - b) * 1000 for a, b in zip(on, off, strict=True)]
    ratio = statistics.median(on) / statistics.median(off)
    median_cost = statistics.median(cost_ms)
    return {
        "provider": v.provider,
        "model": v.model,
        "pairs": pairs,
        "sandbox_on_median_s": round(statistics.median(on), 3),
        "sandbox_off_median_s": round(statistics.median(off), 3),
        "ratio_of_medians": round(ratio, 4),
        "cost_median_ms": round(median_cost, 1),
        "cost_ms_each": [round(x, 1) for x in cost_ms],
        "on_s_each": [round(x, 3) for x in on],
        "off_s_each": [round(x, 3) for x in off],
        "foreign_cpu": round(foreign, 3),
        "quiet": quiet,
        "met": ratio <= TARGET_RATIO or median_cost <= TARGET_MS,
    }


def spawn_cost(root: Path, pairs: int = 40) -> dict[str, Any]:
    """The sandbox's fixed cost alone, without an agent's noise: starting ``/bin/true`` in a
    run's worktree through :func:`contain` (spec built, bubblewrap, namespaces) against
    starting it directly with the same allowlisted environment; alternating pairs."""
    repo = make_repo(root / "spawn-repo")
    tree = root / "spawn-data" / "worktrees" / "p" / "1-x" / "repo"
    tree.parent.mkdir(parents=True)
    subprocess.run(["git", "worktree", "add", "-q", "-b", "b", str(tree)], cwd=repo, check=True)
    private = (root / "spawn-data",)
    on, off = [], []
    for i in range(pairs):
        for mode in ("on", "off") if i % 2 == 0 else ("off", "on"):
            sandbox = Sandbox(enabled=mode == "on", private=private).for_run([tree], "full")
            started = time.perf_counter()
            jail = contain(sandbox, "script", ["/bin/true"], {}, cwd=tree)
            subprocess.run(jail.argv, env=jail.env, cwd=tree, check=True)
            (on if mode == "on" else off).append((time.perf_counter() - started) * 1000)
    return {
        "pairs": pairs,
        "on_median_ms": round(statistics.median(on), 2),
        "off_median_ms": round(statistics.median(off), 2),
        "cost_median_ms": round(statistics.median(a - b for a, b in zip(on, off, strict=True)), 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=10)
    ap.add_argument("--only", action="append", choices=sorted(VARIANTS))
    ap.add_argument("--json", type=Path)
    ap.add_argument("--spawn-only", action="store_true")
    args = ap.parse_args()
    found = probe(None)
    if not found.ok:
        raise SystemExit(f"bubblewrap cannot run here: {found.problem}")
    os.environ.update(
        GIT_AUTHOR_NAME="bench",
        GIT_AUTHOR_EMAIL="bench@codeyard.invalid",
        GIT_COMMITTER_NAME="bench",
        GIT_COMMITTER_EMAIL="bench@codeyard.invalid",
    )
    root = fresh_dir("sandbox_cost")
    spawn = spawn_cost(root)
    print(f"== spawn of /bin/true: {json.dumps(spawn)}", flush=True)
    results, skipped = [], {}
    for name in [] if args.spawn_only else args.only or list(VARIANTS):
        variant = VARIANTS[name]
        why = variant.problem()
        if why is not None:
            skipped[name] = why
            print(f"== {name}: skipped: {why}", flush=True)
            continue
        print(f"== {name}", flush=True)
        result = asyncio.run(measure(variant, args.pairs, root))
        print(json.dumps({k: v for k, v in result.items() if not k.endswith("each")}), flush=True)
        results.append(result)
    if args.json:
        write_json(
            args.json,
            {
                "machine": machine(),
                "bwrap": {"path": found.path, "version": found.version},
                "target": {"ratio": TARGET_RATIO, "ms": TARGET_MS},
                "spawn": spawn,
                "results": results,
                "skipped": skipped,
            },
        )


if __name__ == "__main__":
    main()
