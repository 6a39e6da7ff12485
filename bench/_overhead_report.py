"""What ``bench/overhead.py`` makes of its runs: the phases a run's marks split it into, the
figures of a variant's pairs (medians, ratios, per-phase differences, the target) and the
markdown tables for ``bench/RESULTS.md``. The measuring loop itself is ``overhead.py``'s."""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

from bench._common import machine
from bench._overhead_variants import Variant

TARGET_RATIO = 1.10
#: ... or this much per turn, whichever allows more (issue 15).
TARGET_MS = 60.0


#: The phases of one run, in order: (name, from mark, to mark). Direct runs have the marks
#: ``spawn`` (the bench starts the CLI), ``first request`` / ``last request`` (the fake model
#: received the turn's first / last model call), ``turn end`` (the CLI's final line) and
#: ``agent done`` (its exit); Codeyard runs have the same from the server's timing file, plus
#: the run's own steps before the spawn and after the exit.
PHASES: list[tuple[str, str, str]] = [
    ("request to run.created", "request", "run.created"),
    ("worktree (run.created to prepared)", "run.created", "prepared"),
    ("turn set-up (prepared to spawn)", "prepared", "spawn"),
    ("CLI start (spawn to 1st model request)", "spawn", "first request"),
    ("model calls and tool (1st to last model request)", "first request", "last request"),
    ("turn end (last model request to the turn's end)", "last request", "turn end"),
    ("CLI exit (turn end to process gone)", "turn end", "agent done"),
    ("settle (exit to turn.completed)", "agent done", "turn.completed"),
    ("SSE delivery of turn.completed", "turn.completed", "delivered"),
]
#: Not a step of the sum: when the turn-end checkpoint's git work was done (it runs while
#: the CLI exits, from the turn's end).
CHECKPOINT = ("checkpoint git (turn end to its commit)", "turn end", "checkpoint commit")
#: Not a step of the sum either: the turn's end to its record (with ``TurnEnd.exiting`` it is
#: recorded while the CLI exits, and "settle" is then negative).
RECORDED = ("turn end recorded (turn end to turn.completed)", "turn end", "turn.completed")
#: Not steps of the sum: the Codex adapter's own milestones (``agents/codex/turn.py``) within
#: the CLI's start and its model calls, Codeyard's side only.
DETAIL: list[tuple[str, str, str]] = [
    ("codex: spawn to thread/start answered (the handshake)", "spawn", "codex thread"),
    ("codex: thread to turn/start answered", "codex thread", "codex turn started"),
    ("codex: turn/start answered to 1st model request", "codex turn started", "first request"),
    ("codex: 1st model request to approval asked", "first request", "codex asked"),
    ("codex: approval asked to answered (the decision)", "codex asked", "codex answered"),
    ("codex: approval answered to last model request", "codex answered", "last request"),
]


def phases(marks: dict[str, float]) -> dict[str, float]:
    """Where a run's time went, in ms, for the phases whose two marks it has."""
    out = {}
    for name, a, b in [*PHASES, CHECKPOINT, RECORDED, *DETAIL]:
        if a in marks and b in marks:
            out[name] = round((marks[b] - marks[a]) * 1000, 1)
    return out


def summarize(
    v: Variant, pairs: int, rows: list[dict[str, Any]], foreign: float, quiet: dict[str, float]
) -> dict[str, Any]:
    """A variant's figures from its pairs' rows (``{"first", "direct", "codeyard"}``)."""
    direct = [r["direct"]["seconds"] for r in rows]
    ours = [r["codeyard"]["seconds"] for r in rows]
    ratios = [c / d for c, d in zip(ours, direct, strict=True)]
    overhead_ms = [(c - d) * 1000 for c, d in zip(ours, direct, strict=True)]
    ratio = statistics.median(ours) / statistics.median(direct)
    return {
        "provider": v.provider,
        "model": v.model,
        "pairs": pairs,
        "direct_median_s": round(statistics.median(direct), 3),
        "codeyard_median_s": round(statistics.median(ours), 3),
        "ratio_of_medians": round(ratio, 3),
        "median_pair_ratio": round(statistics.median(ratios), 3),
        "overhead_median_ms": round(statistics.median(overhead_ms), 1),
        "overhead_ms_each": [round(x, 1) for x in overhead_ms],
        "direct_s_each": [round(x, 3) for x in direct],
        "codeyard_s_each": [round(x, 3) for x in ours],
        "direct_final_line_median_s": round(
            statistics.median(r["direct"]["final_line_s"] for r in rows), 3
        ),
        "post_median_ms": round(statistics.median(r["codeyard"]["post_s"] for r in rows) * 1000),
        "model_calls": sorted({r[s]["model_calls"] for r in rows for s in ("direct", "codeyard")}),
        "phases_median_ms": {
            side: {
                name: round(statistics.median(r[side]["phases_ms"][name] for r in rows), 1)
                for name in rows[0][side]["phases_ms"]
                if all(name in r[side]["phases_ms"] for r in rows)
            }
            for side in ("direct", "codeyard")
        },
        "phase_deltas_ms": phase_deltas(rows),
        "foreign_cpu": round(foreign, 3),
        "quiet": quiet,
        "allowed_ms": round(
            max(TARGET_MS, (TARGET_RATIO - 1) * statistics.median(direct) * 1000), 1
        ),
        "met": ratio <= TARGET_RATIO
        or statistics.median(overhead_ms)
        <= max(TARGET_MS, (TARGET_RATIO - 1) * statistics.median(direct) * 1000),
    }


def phase_deltas(rows: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Per phase: the direct median, Codeyard's median and the median of the per-pair
    differences (Codeyard minus direct; a phase direct runs do not have counts whole)."""
    out: dict[str, dict[str, float | None]] = {}
    for name, _, _ in PHASES:
        ours = [r["codeyard"]["phases_ms"].get(name) for r in rows]
        theirs = [r["direct"]["phases_ms"].get(name) for r in rows]
        if any(x is None for x in ours):
            continue
        both = all(x is not None for x in theirs)
        diffs = [c - (d if both else 0.0) for c, d in zip(ours, theirs, strict=True)]
        out[name] = {
            "direct": round(statistics.median(theirs), 1) if both else None,
            "codeyard": round(statistics.median(ours), 1),
            "delta": round(statistics.median(diffs), 1),
        }
    return out


def table(results: list[dict[str, Any]], skipped: dict[str, str]) -> str:
    """The markdown tables for bench/RESULTS.md: the figures, then the phases."""
    m = machine()
    host = f"{m['nproc']} CPUs ({m['cpu']}), {m['mem_gb']} GB, Python {m['python']}"
    load = os.getloadavg()
    lines = [
        f"`bench/overhead.py`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {host}; "
        f"load average at the end {load[0]:.2f} / {load[1]:.2f} (1 / 5 min)",
        "",
        "| provider | pairs | direct | through Codeyard | ratio of medians | median of pair "
        "ratios | overhead | allowed | foreign CPU | target |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['provider']} | {r['pairs']} | {r['direct_median_s']:.3f} s "
            f"| {r['codeyard_median_s']:.3f} s | {r['ratio_of_medians']:.2f} "
            f"| {r['median_pair_ratio']:.2f} | {r['overhead_median_ms']:+.0f} ms "
            f"| {r['allowed_ms']:.0f} ms | {r['foreign_cpu']:.0%} "
            f"| {'**met**' if r['met'] else '**not met**'} |"
        )
    for name, why in skipped.items():
        lines.append(f"| {name} | skipped: {why} | | | | | | | | |")
    for r in results:
        lines += [
            "",
            f"{r['provider']}, phases (ms; Codeyard - direct is the median of the pairs' "
            "differences):",
            "",
            "| phase | direct | through Codeyard | Codeyard - direct |",
            "|---|---:|---:|---:|",
        ]
        total = 0.0
        for name, p in r["phase_deltas_ms"].items():
            direct = "-" if p["direct"] is None else f"{p['direct']:g}"
            lines.append(f"| {name} | {direct} | {p['codeyard']:g} | {p['delta']:+g} |")
            total += p["delta"]
        lines.append(
            f"| sum of the differences (whole run: {r['overhead_median_ms']:+.0f}) "
            f"| | | {total:+.0f} |"
        )
        checkpoint = r["phases_median_ms"]["codeyard"].get(CHECKPOINT[0])
        if checkpoint is not None:
            lines.append(f"| ({CHECKPOINT[0]}, beside the exit) | | {checkpoint:g} | |")
        for name in [RECORDED[0], *(d[0] for d in DETAIL)]:
            value = r["phases_median_ms"]["codeyard"].get(name)
            if value is not None:
                lines.append(f"| ({name}) | | {value:g} | |")
    return "\n".join(lines)
