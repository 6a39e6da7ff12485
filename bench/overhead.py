"""Orchestration overhead: a Codeyard run against the same agent CLI invoked directly (issue 15's
target: at most 1.10x or at most 60 ms per turn, whichever is larger).

Both sides run the same binary against the same scripted fake model server
(``codeyard.testing.fake_llm``, in this process) with the same replies: the model asks for one
``Bash`` call (``echo hi``) and then answers with text, so each turn makes two model calls and
runs one tool. Alternating pairs (which side goes first alternates too), after one warm-up run
of each side that is not counted.

- **direct**: the CLI as a person would script it, in a git checkout, its events on stdout;
  spawn to process exit.
- **codeyard**: a real server process (``tests/support/server.py``), ``POST /api/runs`` to the
  ``turn.completed`` frame on the run's SSE stream (opened right after the POST returns,
  replaying from the start). This includes everything Codeyard adds: the worktree and its first
  snapshot, the SDK and the launcher, the policy decision for the tool call, change tracking,
  the event log, the turn-end checkpoint and diff stats.

After each Codeyard run the next run (either side) waits until the server's work for it is
done: its agent exited, the worktree pool's fill for the next run started and every child
process of the server (git: that fill, the discarded run's clean-up) ended. Without that wait
that work fell into the next run's time, half the time a direct one.

Variants are data (``VARIANTS``, in ``bench/_overhead_variants.py``); the phases, the figures
and the tables are ``bench/_overhead_report.py``'s; ``claude-code`` runs the
Claude Code binary bundled in claude-agent-sdk (``codeyard/agents/claude/process.py``),
``codex`` the Codex binary when that provider is registered and can run here.

    .venv/bin/python bench/overhead.py [--pairs 12] [--only claude-code] [--json out.json]
        [--codex-direct-config features.plugins=false] [--agent-niceness 0]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import Interference, fresh_dir, machine, make_repo, wait_quiet, write_json
from bench._overhead_report import TARGET_MS, TARGET_RATIO, phases, summarize, table
from bench._overhead_variants import PROMPT, VARIANTS, Variant, replies, with_codex_config
from codeyard.run_workspace.pool import FILL_DELAY
from codeyard.testing.fake_llm import FakeLLM
from tests.support.server import ServerProcess, open_sse


def _model_requests(fake: FakeLLM, before: int) -> list[float]:
    """Arrival times (unix) of the model calls made since ``before`` calls had been made."""
    return [r.at for r in fake.model_calls()[before:]]


async def run_direct(v: Variant, fake: FakeLLM, checkout: Path, home: Path) -> dict[str, Any]:
    fake.script(replies(v.tool))
    calls = len(fake.model_calls())
    env = {**os.environ, **v.env(fake.url, home)}
    wall = time.time()
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *v.argv(fake.url),
        cwd=checkout,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    final_at = None
    async for raw in proc.stdout:
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if final_at is None and isinstance(line, dict) and v.final(line):
            final_at = time.perf_counter()
    code = await proc.wait()
    ended = time.perf_counter()
    requests = _model_requests(fake, calls)
    if code != 0 or final_at is None or not requests:
        raise RuntimeError(f"direct {v.provider} run failed (exit {code})")
    marks = {
        "spawn": wall,
        "first request": requests[0],
        "last request": requests[-1],
        "turn end": wall + (final_at - started),
        "agent done": wall + (ended - started),
    }
    return {
        "seconds": ended - started,
        "final_line_s": final_at - started,
        "phases_ms": phases(marks),
        "model_calls": len(requests),
    }


async def run_codeyard(
    v: Variant, fake: FakeLLM, server: ServerProcess, repo: Path, home: Path, timing: Path
) -> dict[str, Any]:
    fake.script(replies(v.tool))
    calls = len(fake.model_calls())
    body = {
        "prompt": PROMPT,
        "repo_path": str(repo),
        "provider": v.provider,
        "model": v.model,
        "agent_options": {"env": v.env(fake.url, home), **v.options(fake.url, home)},
    }
    async with server.client(timeout=120) as api:
        wall = time.time()
        started = time.perf_counter()
        resp = await api.post("/api/runs", json=body)
        assert resp.status_code == 201, resp.text
        created = time.perf_counter()
        run = resp.json()["id"]
        path = f"/api/runs/{run}/events/stream"
        async with open_sse(api, path, params={"after": 0}) as stream:
            async for frame in stream.frames():
                if frame.event == "turn.completed":
                    break
                if frame.event == "run.status" and frame.json()["data"]["to"] == "failed":
                    raise RuntimeError(f"codeyard {v.provider} run failed: {frame.data}")
        ended = time.perf_counter()
        events = (await api.get(f"/api/runs/{run}/events", params={"limit": 500})).json()["data"]
        await api.post(f"/api/runs/{run}/resolve", json={"action": "discard"})
    # Its turn's end may be recorded while the CLI exits (``TurnEnd.exiting``): the next run
    # starts once the CLI is gone, as a direct run's successor starts after its exit, and
    # once the server's own work for this run is done (the pool's next worktree, the
    # discarded run's clean-up): otherwise it would land in the next run's time, direct or not.
    await _agent_gone(timing, run)
    await _server_quiet(server.pid, timing_marks(timing, run))
    requests = _model_requests(fake, calls)
    marks = {
        **server_marks(events, timing_marks(timing, run)),
        "request": wall,
        "first request": requests[0],
        "last request": requests[-1],
        "delivered": wall + (ended - started),
    }
    return {
        "seconds": ended - started,
        "post_s": created - started,
        "phases_ms": phases(marks),
        "model_calls": len(requests),
    }


async def _agent_gone(timing: Path, run: str, wait: float = 30.0) -> None:
    """Until the server's timing file says ``run``'s agent has exited (``agent done``)."""
    deadline = time.monotonic() + wait
    while "agent done" not in timing_marks(timing, run):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the agent of run {run} did not exit within {wait} s")
        await asyncio.sleep(0.005)


def _descendants(pid: int) -> list[int]:
    """The live processes below ``pid`` (its threads' children lists, recursively)."""
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            with contextlib.suppress(OSError):
                kids = [int(k) for k in (task / "children").read_text().split()]
                found += kids
                todo += kids
    return found


async def _server_quiet(pid: int, marks: dict[str, float], wait: float = 30.0) -> None:
    """Until the server has started the worktree pool's fill this run asked for (``FILL_DELAY``
    after the run was prepared) and has no child process left (git: the fill, the discard)
    for 50 ms."""
    deadline = time.monotonic() + wait
    fill_at = marks.get("prepared", 0.0) + FILL_DELAY + 0.05
    await asyncio.sleep(max(0.0, fill_at - time.time()))
    calm_since = None
    while True:
        if _descendants(pid):
            calm_since = None
        elif calm_since is None:
            calm_since = time.monotonic()
        elif time.monotonic() - calm_since >= 0.05:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the server's child processes did not end within {wait} s")
        await asyncio.sleep(0.005)


def timing_marks(path: Path, run: str) -> dict[str, float]:
    """The first of each of ``run``'s milestones in the server's timing file
    (``codeyard.agents.timing``): ``prepared`` (the worktrees exist; a new run's agent starts
    then, while its turn's start is written), ``turn``, ``spawn`` (the turn's first process:
    the agent's launcher), ``turn end`` (the agent reported it), ``agent done`` (its process
    exited)."""
    marks: dict[str, float] = {}
    for line in path.read_text().splitlines():
        run_id, _, rest = line.partition(" ")
        what, _, at = rest.rpartition(" ")
        if run_id != run:
            continue
        key = "spawn" if what.startswith("spawn ") else what
        if key == "spawn" and "turn" not in marks:
            continue  # preparation's processes, before the turn began
        marks.setdefault(key, float(at))
    return marks


def server_marks(events: list[dict[str, Any]], marks: dict[str, float]) -> dict[str, float]:
    """``marks`` with the events' server timestamps (ms resolution) added."""

    def at(ts: str) -> float:
        return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()

    out = dict(marks)
    for e in events:
        running = e["type"] == "run.status" and e["data"]["to"] == "running"
        key = "running" if running else e["type"]
        if key in ("run.created", "running", "turn.completed"):
            out.setdefault(key, at(e["ts"]))
        if e["type"] == "checkpoint.created":
            # The row's time: when its git work was done (the event waits for the CLI's exit).
            out.setdefault("checkpoint commit", at(e["data"]["checkpoint"]["created_at"]))
    return out


async def measure(
    v: Variant, pairs: int, root: Path, niceness: int | None = None
) -> dict[str, Any]:
    repo = make_repo(root / f"{v.provider}-repo")
    checkout = make_repo(root / f"{v.provider}-checkout")
    homes = {side: root / f"{v.provider}-home-{side}" for side in ("direct", "codeyard")}
    for home in homes.values():
        home.mkdir(parents=True, exist_ok=True)
    timing = root / f"{v.provider}-timing.log"
    timing.touch()
    env = {"CODEYARD_TIMING_FILE": str(timing)}
    if niceness is not None:  # a diagnosis: how much of the overhead is the agent's nice
        env["CODEYARD_AGENT_NICENESS"] = str(niceness)
    server = ServerProcess(
        root / f"{v.provider}-data",
        env=env,
        wrap=[sys.executable, str(Path(__file__).resolve().parent / "_timed_server.py")],
    )
    server.start()
    rows: list[dict[str, Any]] = []
    try:
        with FakeLLM() as fake:
            await run_direct(v, fake, checkout, homes["direct"])  # warm-up, not counted
            await run_codeyard(v, fake, server, repo, homes["codeyard"], timing)
            quiet = wait_quiet(max_wait=20)
            mon = Interference()
            mon.start()
            for i in range(pairs):
                order = ("direct", "codeyard") if i % 2 == 0 else ("codeyard", "direct")
                row: dict[str, Any] = {"first": order[0]}
                for side in order:
                    if side == "direct":
                        row["direct"] = await run_direct(v, fake, checkout, homes["direct"])
                    else:
                        row["codeyard"] = await run_codeyard(
                            v, fake, server, repo, homes["codeyard"], timing
                        )
                rows.append(row)
                d, c = row["direct"]["seconds"], row["codeyard"]["seconds"]
                print(f"  pair {i + 1}: direct {d:.3f} s, codeyard {c:.3f} s", flush=True)
            foreign = mon.stop()
    finally:
        server.stop()
    return summarize(v, pairs, rows, foreign, quiet)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=12)
    ap.add_argument("--only", action="append", choices=sorted(VARIANTS))
    ap.add_argument("--json", type=Path)
    ap.add_argument(
        "--codex-direct-config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="also give the direct codex exec this -c override (e.g. features.plugins=false)",
    )
    ap.add_argument(
        "--agent-niceness",
        type=int,
        metavar="N",
        help="the server's agent_niceness (default: Codeyard's, 10); the direct CLI is not "
        "niced, so under other load this shows how much of the overhead the nice is",
    )
    args = ap.parse_args()
    os.environ.update(
        GIT_AUTHOR_NAME="bench",
        GIT_AUTHOR_EMAIL="bench@codeyard.invalid",
        GIT_COMMITTER_NAME="bench",
        GIT_COMMITTER_EMAIL="bench@codeyard.invalid",
    )
    root = fresh_dir("overhead")
    results, skipped = [], {}
    for name in args.only or list(VARIANTS):
        variant = VARIANTS[name]
        if name == "codex" and args.codex_direct_config:
            variant = with_codex_config(variant, args.codex_direct_config)
        why = variant.problem()
        if why is not None:
            skipped[name] = why
            print(f"== {name}: skipped: {why}", flush=True)
            continue
        print(f"== {name}", flush=True)
        result = asyncio.run(measure(variant, args.pairs, root, args.agent_niceness))
        print(json.dumps({k: v for k, v in result.items() if not k.endswith("each")}), flush=True)
        results.append(result)
    print(table(results, skipped))
    if args.json:
        write_json(
            args.json,
            {
                "machine": machine(),
                "target_ratio": TARGET_RATIO,
                "target_ms": TARGET_MS,
                "results": results,
                "skipped": skipped,
            },
        )


if __name__ == "__main__":
    main()
