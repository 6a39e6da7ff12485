"""A bench server's event-loop lag and garbage-collection pauses, measured in the server itself.

``bench/_timed_server.py`` installs this when ``BENCH_LOOP_FILE`` is set. Two kinds of lines,
each ``<kind> <unix time> <ms>[ <generation>]``:

- ``lag``: a task on the server's loop sleeps 10 ms at a time; how much later than asked it
  woke (what any callback, an event's delivery or a request, waits at that moment). The task
  starts with the writer (``Writer.start``), so on the app's own loop.
- ``gc``: each collection of the cyclic garbage collector that took ≥ 1 ms, its generation and
  the CPU it took (the collecting thread's: on a loaded machine the wall time also counts the
  moments the process waited for a core).

:func:`summary` turns a file into percentiles, optionally split by a ``phase`` function of the
wall-clock time (``bench/runs_scale.py``).
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

TICK = 0.01


def install(path: Path) -> None:
    out = path.open("a", buffering=1)
    started: list[float] = [0.0, 0.0]

    def collected(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[:] = [time.perf_counter(), time.thread_time()]
            return
        ms = (time.perf_counter() - started[0]) * 1000
        if ms >= 1:
            cpu = (time.thread_time() - started[1]) * 1000
            out.write(f"gc {time.time():.4f} {ms:.2f} {info['generation']} {cpu:.2f}\n")

    gc.callbacks.append(collected)

    from codeyard.store import writer

    start = writer.Writer.start

    async def start_and_tick(self: writer.Writer) -> None:
        await start(self)
        ticker = asyncio.create_task(_tick(out), name="bench-loop-lag")
        ticks.add(ticker)
        ticker.add_done_callback(ticks.discard)

    writer.Writer.start = start_and_tick  # type: ignore[method-assign]


ticks: set[asyncio.Task[None]] = set()


async def _tick(out: TextIO) -> None:
    while True:
        before = time.perf_counter()
        await asyncio.sleep(TICK)
        late = (time.perf_counter() - before - TICK) * 1000
        out.write(f"lag {time.time():.4f} {max(0.0, late):.2f}\n")


def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q / 100 * len(s)))] if s else 0.0


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50_ms": round(_pct(values, 50), 1),
        "p99_ms": round(_pct(values, 99), 1),
        "max_ms": round(max(values), 1),
        "over_50ms": sum(1 for v in values if v > 50),
    }


def summary(
    path: Path,
    phase: Callable[[float], str] | None = None,
    since: float = 0.0,
    until: float = float("inf"),
) -> dict[str, Any]:
    """Loop lag percentiles (overall and by phase) and GC pauses by generation, of what was
    written between ``since`` and ``until`` (unix times)."""
    lag: list[float] = []
    by_phase: dict[str, list[float]] = {}
    gcs: dict[str, list[float]] = {}
    gc_cpu: dict[str, list[float]] = {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) < 3 or not since <= float(parts[1]) <= until:
            continue
        if parts[0] == "lag":
            ms = float(parts[2])
            lag.append(ms)
            if phase is not None:
                by_phase.setdefault(phase(float(parts[1])), []).append(ms)
        elif parts[0] == "gc":
            gcs.setdefault(f"gen{parts[3]}", []).append(float(parts[2]))
            if len(parts) > 4:
                gc_cpu.setdefault(f"gen{parts[3]}", []).append(float(parts[4]))
    return {
        "lag": _stats(lag),
        "lag_by_phase": {k: _stats(v) for k, v in by_phase.items()},
        "gc": {k: {**_stats(v), "total_ms": round(sum(v), 1)} for k, v in sorted(gcs.items())},
        "gc_cpu": {k: _stats(v) for k, v in sorted(gc_cpu.items())},
    }
