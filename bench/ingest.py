"""Event ingest: events/s through ``Writer.append`` versus raw ``sqlite3.executemany``.

Both sides insert the same rows ``(id, run_id, project_id, seq, type, ts, data)`` into a fresh
WAL-mode SQLite file whose schema (and so indexes) comes from the project's own migrations, with
the project's pragmas (``journal_mode=WAL``, ``synchronous=NORMAL``).

* baseline: stdlib ``sqlite3``, one ``executemany`` in one transaction;
* ours: ``Writer.append(run_id, events)`` on a fresh database (the real app path: group
  commit, numbering, the run-row update, the commit in the writer's SQLite thread, hand-off
  to a real ``Hub``), in four shapes:

  - ``100/call x1``: one producer awaiting appends of 100 events each (a commit per call);
  - ``100/call x10``: ten such producers at once (group commit merges their calls);
  - ``1/call x1``: one producer awaiting each single-event append (a commit per event);
  - ``1/call x1000``: single-event appends with 1,000 in flight (many producers; group commit).

For the awaited shapes (a commit per call by construction) it also reports, as a reference,
plain synchronous ``sqlite3`` committing once per call the same way.

Event payloads (``data`` JSON text) are built before the clock starts on both sides.

It writes ``bench/out/ingest.json`` and a Markdown table with issue 15's targets
(``bench/out/ingest.md``, printed too). ``--profile`` adds, for the two awaited shapes, where
the time of one commit goes: the writer thread's own time in ``sqlite3`` (BEGIN to COMMIT)
against the whole call, and the event loop's busiest functions (cProfile).

    .venv/bin/python bench/ingest.py [--events 100000] [--json out.json] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import sqlite3
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import OUT, fresh_dir, guarded, machine, write_json
from codeyard.domain.events import parse_event, utc_now
from codeyard.events.hub import Hub
from codeyard.store import projects, runs, sqlite_commit
from codeyard.store.db import create_engine, migrate
from codeyard.store.writer import Tx, Writer

RUN_ID = "run_bench000000000000000000"
PROJECT_ID = "prj_bench000000000000000000"
TYPE = "agent.delta"


def payloads(n: int) -> list[str]:
    """Realistic coalesced-delta payloads (~120 bytes of JSON each)."""
    return [
        json.dumps(
            {"message_id": "msg_0001", "text": f"token {i} of a streamed reply, some words. "},
            separators=(",", ":"),
            ensure_ascii=False,
        )
        for i in range(n)
    ]


def run_values() -> dict[str, Any]:
    now = utc_now()
    return {
        "id": RUN_ID,
        "number": 1,
        "title": "bench",
        "prompt": "bench",
        "project_id": PROJECT_ID,
        "repo_ids": [],
        "agent_id": None,
        "provider": "script",
        "model": None,
        "agent_options": {},
        "status": "draft",
        "status_reason": None,
        "resolution": None,
        "source_ref": "HEAD",
        "base_commits": {},
        "branch": None,
        "worktrees": {},
        "parent_run_id": None,
        "session_id": None,
        "agent_state": {},
        "turns": 0,
        "usage": dict(runs.EMPTY_USAGE),
        "budget_usd": None,
        "pending_approvals": 0,
        "pending_messages": [],
        "diff_stats": {"files": 0, "insertions": 0, "deletions": 0},
        "pull_request": None,
        "archived": False,
        "labels": [],
        "last_seq": 0,
        "queued_at": None,
        "created_at": now,
        "started_at": None,
        "finished_at": None,
        "updated_at": now,
    }


async def _fresh_db(path: Path, with_run: bool) -> None:
    """Schema from the migrations (same indexes as the app), plus a project and run row."""
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await migrate(engine)
    if with_run:
        writer = Writer(engine, lambda _e: None)
        await writer.start()

        async def job(tx: Tx) -> None:
            now = utc_now()
            await projects.insert_project(
                tx,
                {
                    "id": PROJECT_ID,
                    "name": "bench",
                    "slug": "bench",
                    "created_at": now,
                    "updated_at": now,
                },
            )
            await runs.insert(tx, run_values())

        await writer.run(job)
        await writer.stop()
    await engine.dispose()


INSERT = (
    "INSERT INTO events (id, run_id, project_id, seq, type, ts, data) VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def baseline(path: Path, datas: list[str], per_commit: int | None = None) -> tuple[float, float]:
    """Raw sqlite3: the same rows in one ``executemany``, one transaction. Returns seconds
    (wall, and the process's CPU).

    With ``per_commit``, a reference instead: synchronous sqlite3 doing what the writer does
    for each awaited call (BEGIN, ``executemany`` of ``per_commit`` rows, the run-row UPDATE,
    COMMIT), i.e. the best any writer could do when every call is its own commit.
    """
    asyncio.run(_fresh_db(path, with_run=True))
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    start, cpu = time.perf_counter(), time.process_time()
    ts = utc_now()
    rows = [(i + 1, RUN_ID, PROJECT_ID, i + 1, TYPE, ts, d) for i, d in enumerate(datas)]
    if per_commit is None:
        conn.execute("BEGIN")
        conn.executemany(INSERT, rows)
        conn.execute("COMMIT")
    else:
        for i in range(0, len(rows), per_commit):
            conn.execute("BEGIN")
            conn.executemany(INSERT, rows[i : i + per_commit])
            conn.execute(
                "UPDATE runs SET last_seq = ?, updated_at = ? WHERE id = ?",
                (i + per_commit, utc_now(), RUN_ID),
            )
            conn.execute("COMMIT")
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    (count,) = conn.execute("SELECT COUNT(*) FROM events").fetchone()
    conn.close()
    assert count == len(datas), count
    return elapsed, cpu


async def ours(
    path: Path,
    datas: list[str],
    per_call: int,
    in_flight: int,
    prof: cProfile.Profile | None = None,
) -> dict[str, Any]:
    await _fresh_db(path, with_run=True)
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    hub = Hub()
    writer = Writer(engine, hub.publish)
    await writer.start()
    # Events are made (validated, their JSON cached) before the clock, as an emitter does.
    evs = [parse_event(TYPE, json.loads(d)) for d in datas]
    for e in evs:
        assert e.data_json  # cached once, as the writer would ask for it
    calls = [evs[i : i + per_call] for i in range(0, len(evs), per_call)]
    batches0 = writer.batches
    if prof is not None:
        prof.enable()
    start, cpu = time.perf_counter(), time.process_time()
    if in_flight <= 1:
        for chunk in calls:
            await writer.append(RUN_ID, chunk)
    else:
        # ``in_flight`` producers, each awaiting its own appends one after another.
        todo = iter(calls)

        async def producer() -> None:
            for chunk in todo:
                await writer.append(RUN_ID, chunk)

        await asyncio.gather(*(producer() for _ in range(in_flight)))
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    if prof is not None:
        prof.disable()
    batches = writer.batches - batches0
    await writer.stop()
    async with engine.connect() as conn:
        from sqlalchemy import text

        count = (await conn.execute(text("SELECT COUNT(*) FROM events"))).scalar()
        last = (await conn.execute(text(f"SELECT last_seq FROM runs WHERE id='{RUN_ID}'"))).scalar()
    await engine.dispose()
    assert count == len(datas) and last == len(datas), (count, last)
    return {"seconds": elapsed, "cpu_seconds": cpu, "batches": batches}


def measure(n: int, per_call: int, in_flight: int, label: str, repeat: int) -> dict[str, Any]:
    """``repeat`` alternating pairs (raw, ours), each on fresh files; medians are reported."""
    datas = payloads(n)
    raw_s: list[float] = []
    ours_s: list[float] = []
    seen: list[dict[str, Any]] = []
    ref_s: list[float] = []
    raw_cpu: list[float] = []
    ours_cpu: list[float] = []
    batches = 0
    for k in range(repeat):
        name = f"ingest-{label.split()[0].replace('/', '_')}-{in_flight}-{k}"

        def pair(name: str = name) -> tuple[tuple[float, float], dict[str, Any]]:
            d = fresh_dir(name)  # fresh files for every attempt
            raw = baseline(d / "raw.db", datas)
            return raw, asyncio.run(ours(d / "ours.db", datas, per_call, in_flight))

        ((raw, cpu), res), info = guarded(pair)
        if in_flight == 1:  # every call is a commit: what plain sqlite3 does with that
            ref_s.append(baseline(fresh_dir(name) / "ref.db", datas, per_call)[0])
        raw_s.append(raw)
        raw_cpu.append(cpu)
        ours_s.append(res["seconds"])
        ours_cpu.append(res["cpu_seconds"])
        seen.append(info)
        batches = res["batches"]
    raw_rate = n / statistics.median(raw_s)
    our_rate = n / statistics.median(ours_s)
    return {
        "label": label,
        "events": n,
        "per_call": per_call,
        "in_flight": in_flight,
        "repeat": repeat,
        "raw_seconds": [round(x, 4) for x in raw_s],
        "raw_events_per_s": round(raw_rate),
        "ours_seconds": [round(x, 4) for x in ours_s],
        "ours_events_per_s": round(our_rate),
        "commits": batches,
        "ratio": round(our_rate / raw_rate, 3),
        "ratios": [round(r / o, 3) for r, o in zip(raw_s, ours_s, strict=True)],
        # CPU seconds of the process (every thread), less disturbed by other work than wall
        # time; on an idle machine the wall-time ratio is the target's figure.
        "cpu_ratio": round(statistics.median(raw_cpu) / statistics.median(ours_cpu), 3),
        "ours_cpu_us_per_event": round(statistics.median(ours_cpu) / n * 1e6, 2),
        "foreign_cpu": [x["foreign_cpu"] for x in seen],
        "raw_commit_per_call_events_per_s": round(n / statistics.median(ref_s)) if ref_s else None,
        "attempts": [x["attempt"] for x in seen],
    }


#: Issue 15's ingest targets: (case label prefix, what is compared, threshold).
TARGETS = {
    "100/call x1 (": ("ratio", 0.6, "≥ 0.6x raw"),
    "1/call x1 (": ("ours_events_per_s", 2000, "≥ 2,000/s"),
}


def markdown(data: dict[str, Any]) -> str:
    """The table for ``bench/RESULTS.md`` (issue 15's targets)."""
    m = data["machine"]
    lines = [
        f"`bench/ingest.py` ({data['args']}), {m['date']}; {m['nproc']} CPUs ({m['cpu']}), "
        f"Python {m['python']}, SQLite {m['sqlite']}; load average (1/5/15 min) at the start "
        f"{data['loadavg_start']}, at the end {data['loadavg_end']}.",
        "",
        "| case | events | raw `sqlite3` events/s | Codeyard events/s | ratio (pairs) | commits "
        "| commit per call, `sqlite3` | CPU ratio | Codeyard CPU/event | foreign CPU | target |",
        "|---|---:|---:|---:|---|---:|---:|---:|---:|---|---|",
    ]
    for c in data["cases"]:
        ref = c["raw_commit_per_call_events_per_s"]
        ref_s = f"{ref:,}/s ({ref / c['raw_events_per_s']:.2f})" if ref else "-"
        target = "-"
        for prefix, (key, need, text) in TARGETS.items():
            if c["label"].startswith(prefix):
                target = f"{text}: **{'met' if c[key] >= need else 'not met'}**"
        foreign = ", ".join(f"{x:.0%}" for x in c["foreign_cpu"])
        lines.append(
            f"| {c['label']} | {c['events']:,} | {c['raw_events_per_s']:,} | "
            f"{c['ours_events_per_s']:,} | {c['ratio']:.2f} ({', '.join(map(str, c['ratios']))})"
            f" | {c['commits']:,} | {ref_s} | {c['cpu_ratio']:.2f} | "
            f"{c['ours_cpu_us_per_event']:.1f} us | {foreign} | {target} |"
        )
    for p in data.get("profiles", []):
        lines += [
            "",
            f"Profile, {p['label']} ({p['calls']:,} calls): {p['us_per_call']:.0f} us per call, "
            f"of which {p['thread_us_per_commit']:.0f} us in the writer thread's `sqlite3` work "
            f"(BEGIN to COMMIT); the rest is numbering, the hop, asyncio and the hub. Event loop, "
            "by own time:",
            "",
            "```",
            p["top"].rstrip(),
            "```",
        ]
    return "\n".join(lines) + "\n"


def profile(n: int, per_call: int, label: str) -> dict[str, Any]:
    """One extra run of an awaited shape, instrumented: the commit thread's own time per
    commit (wrapping ``CommitThread._write``) and a cProfile of the event loop's thread."""
    spent: list[float] = []
    write = sqlite_commit.CommitThread._write

    def timed(self: Any, conn: Any, rows: Any, updates: Any) -> None:
        t0 = time.perf_counter()
        try:
            write(self, conn, rows, updates)
        finally:
            spent.append(time.perf_counter() - t0)

    sqlite_commit.CommitThread._write = timed  # type: ignore[method-assign]
    prof = cProfile.Profile()
    try:
        path = fresh_dir(f"ingest-profile-{per_call}") / "ours.db"
        datas = payloads(n)
        res = asyncio.run(ours(path, datas, per_call, 1, prof))
    finally:
        sqlite_commit.CommitThread._write = write  # type: ignore[method-assign]
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(14)
    top = out.getvalue()
    top = top[top.find("ncalls") :] if "ncalls" in top else top
    calls = n // per_call
    timed_commits = spent[-calls:]  # the set-up job before the clock commits elsewhere
    return {
        "label": label,
        "calls": calls,
        "us_per_call": res["seconds"] / calls * 1e6,
        "thread_us_per_commit": statistics.mean(timed_commits) * 1e6 if timed_commits else 0.0,
        "top": top,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100_000)
    ap.add_argument(
        "--single-events",
        type=int,
        default=5_000,
        help="events for the one-commit-per-event case (it is slow by design)",
    )
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path, default=OUT / "ingest.json")
    ap.add_argument("--md", type=Path, default=OUT / "ingest.md", help="Markdown table")
    ap.add_argument("--profile", action="store_true", help="also profile the awaited shapes")
    args = ap.parse_args()
    r = args.repeat
    load0 = "/".join(f"{x:.1f}" for x in os.getloadavg())
    shapes = [
        (args.events, 100, 1, "100/call x1 (awaited)"),
        (args.events, 100, 10, "100/call x10 in flight"),
        (args.events, 1, 1000, "1/call x1000 in flight"),
        (args.single_events, 1, 1, "1/call x1 (awaited)"),
    ]
    cases = []
    for n, per_call, in_flight, label in shapes:
        cases.append(c := measure(n, per_call, in_flight, label, r))
        print(
            f"{c['label']:>24}: {c['events']:>7} events  raw {c['raw_events_per_s']:>9,}/s  "
            f"ours {c['ours_events_per_s']:>9,}/s  ratio {c['ratio']:.2f}  "
            f"(pairs {c['ratios']}; {c['commits']} commits; foreign CPU {c['foreign_cpu']})",
            flush=True,
        )
    data: dict[str, Any] = {
        "machine": machine(),
        "args": f"--events {args.events} --single-events {args.single_events} --repeat {r}",
        "loadavg_start": load0,
        "cases": cases,
    }
    if args.profile:
        data["profiles"] = [
            profile(min(args.events, 20_000), 100, "100/call x1 (awaited)"),
            profile(args.single_events, 1, "1/call x1 (awaited)"),
        ]
    data["loadavg_end"] = "/".join(f"{x:.1f}" for x in os.getloadavg())
    write_json(args.json, data)
    table = markdown(data)
    args.md.parent.mkdir(parents=True, exist_ok=True)
    args.md.write_text(table)
    print(table)


if __name__ == "__main__":
    main()
