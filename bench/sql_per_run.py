"""Statements per run from the counts of ``BENCH_SQL_COUNT_FILE`` (``bench/_sql_count.py``).

The file holds one JSON line per second with the server's running totals. The step's share is
the last line minus the line before the first second in which more than ``--burst`` statements
were sent after start-up (its migrations and first reads), divided by the runs of the step.
With a second file (an A/B: the same bench on two commits), each caller whose count per run
moved by at least ``--moved`` is listed with both counts.

    BENCH_SQL_COUNT_FILE=/tmp/sql-a.jsonl .venv/bin/python bench/agents_scale.py --agents 20
    .venv/bin/python bench/sql_per_run.py /tmp/sql-a.jsonl [/tmp/sql-b.jsonl] --runs 20
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def per_run(path: Path, runs: int, burst: int, skip: int = 3) -> dict[str, float]:
    """Statements per run by ``<statement head> | <caller>``."""
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    start = next(
        (i for i in range(skip, len(lines)) if lines[i]["total"] - lines[i - 1]["total"] > burst),
        None,
    )
    if start is None:
        raise SystemExit(f"{path}: no second with more than {burst} statements after start-up")
    before, last = lines[start - 1]["counts"], lines[-1]["counts"]
    moved = {key: count - before.get(key, 0) for key, count in last.items()}
    return {key: count / runs for key, count in moved.items() if count}


def by_verb(counts: dict[str, float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, count in counts.items():
        verb = key.split(" | ")[0].split()[0]
        out[verb] = out.get(verb, 0.0) + count
    return out


def _count(item: tuple[str, float]) -> float:
    return -item[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", type=Path, nargs="+", help="one count file, or two to compare")
    ap.add_argument("--runs", type=int, default=20, help="runs in the step (agents_scale's N)")
    ap.add_argument("--burst", type=int, default=25, help="statements in a second: the step began")
    ap.add_argument("--moved", type=float, default=0.2, help="list callers that moved this much")
    args = ap.parse_args()
    counts = [per_run(path, args.runs, args.burst) for path in args.files[:2]]
    for path, one in zip(args.files, counts, strict=False):
        verbs = ", ".join(f"{v} {n:.1f}" for v, n in sorted(by_verb(one).items(), key=_count))
        print(f"{path}: {sum(one.values()):.1f} statements per run ({verbs})")
    if len(counts) == 2:
        a, b = counts
        for key in sorted(set(a) | set(b), key=lambda k: -max(a.get(k, 0), b.get(k, 0))):
            if abs(a.get(key, 0) - b.get(key, 0)) >= args.moved:
                print(f"{a.get(key, 0):7.2f} {b.get(key, 0):7.2f}  {key}")
    else:
        for key, count in sorted(counts[0].items(), key=lambda kv: -kv[1]):
            print(f"{count:7.2f}  {key}")


if __name__ == "__main__":
    main()
