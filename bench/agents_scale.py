"""N concurrent real Claude Code runs on one host (issue 15, target 3): Codeyard's own share of
CPU and memory while they run, errors, and the approval round trip.

A real server process (``tests/support/server.py``: ``codeyard serve`` on a loopback port,
SQLite, the bubblewrap sandbox as configured, ``max_concurrent_runs`` = the largest N) runs the
Claude Code binary bundled in claude-agent-sdk against a fake model server in its own process
(``codeyard.testing.fake_llm`` with a reply chosen by the conversation's progress, so any number
of agents can talk to it at once). Each agent's model asks for four tool calls, one at a time:
``Read`` README.md, ``Grep``, ``Glob``, then ``Write`` notes.txt, which permission mode
``default`` sends to an approval; then it answers with text. Every reply comes after
``--think`` seconds (a model's latency; it also keeps the agents alive together).

For each N in ``--agents`` (e.g. 5,10,20,40,60), N runs are created at once; the bench follows
each run's SSE stream and answers its approval through ``POST /api/approvals/{id}/resolve`` as
soon as ``approval.requested`` arrives. Measured per step:

- **errors**: runs not ending in ``review``, runs without exactly one approval or four tool
  results, failed requests.
- **approval round trip**, two ends, both reported: ``approval.requested``'s ``ts`` → the
  decision delivered to the agent (the server's ``decision delivered`` milestone: the answer
  handed to the SDK, which writes it to Claude Code's stdin in the same task step), and →
  the agent's next event (the approved call's ``tool.result`` ``ts``: the niced agent has
  read the answer, run the tool and reported it). The server's clock throughout (events: ms
  resolution; milestones from ``bench/_timed_server.py``'s timing file). Split into SSE
  delivery to the bench, the resolve request (and its parts: the bench's send, HTTP and
  authentication to the server's ``resolve received``; then the writer's queue and the job to
  the ``approval.resolved`` ts), resolved → the waiting decision woken (``approval
  answered``), woken → delivered, and delivered → the agent's next event.
- **CPU share**: the server process's own CPU seconds (utime + stime: the event loop and its
  threads) over the whole tree's: its own, its reaped children's (``cutime``: git, the sandbox
  launcher, read after every process of the step has exited), and the processes below the
  launcher (the agents: the launcher reaps them, so their CPU never reaches the server's
  ``cutime``), sampled every 0.25 s by process (the last < 0.25 s of each is missed). The
  server's own CPU per run is also split by thread (``server_per_run_ms_by_thread``: each
  thread names its OS thread, ``bench/_threads.py``): ``loop`` (the event loop),
  ``_connection_wor`` (aiosqlite's connection threads), ``codeyard-git`` (the git waiters),
  ``codeyard-sqlite`` (the writer's commit thread), ``uvloop`` (the loop's default executor),
  ``AnyIO worker th``; ``unseen`` is what no thread's samples account for (threads that ended
  between two samples, and the kernel's per-thread rounding).
- **memory share**: the server's RSS over the summed RSS of the server and every descendant at
  the sample where that sum peaked (RSS counts the 400 MB CLI binary's shared pages in every
  process); the same with PSS (``smaps_rollup``, shared pages divided), sampled every 2 s; and
  the drop of the machine's ``MemAvailable`` during the step.
- **memory model**: a least-squares line through (N, tree PSS) and (N, MemAvailable drop) that
  predicts the largest N not run. A step whose predicted need would leave less than
  ``--reserve-gb`` available is not started (the machine is shared).

The fake model and this client stand in for the remote model and the operator: their CPU is not
counted on either side of the share. Nor is the bench's own instrument in the server: the
event-loop lag ticker (``bench/_loop_lag.py``, 100 wake-ups a second, 5-9 ms of the server's
CPU per run at N = 20 in session 15's A/B) runs only with ``--loop-lag``, and a step measured
with it says so (``loop_lag_ticker`` in the JSON); sessions up to 14 always ran it.

The server runs in a session of its own (``setsid`` in ``bench/_timed_server.py``), as
``codeyard serve`` does under systemd or from a terminal apart from the operator's browser.
With the kernel's autogroups (on here), a session is one scheduling group: until session 20
the server shared one with this client and the fake model, which together use about as much
CPU as the server while 60 agents stream, so the three took turns within one group's share
against the 60 agents' groups. Session 20's A/B at N = 60 (load 83-116 from other work):
decision delivered p99 145, 125 ms in a session of its own against 536, 527 ms shared.
``--shared-session`` measures the old way.

SIGTERM and SIGINT stop it cleanly (:func:`stop_on_signals`): the step's runs are let go, the
server stops (it stops its runs' agents first) and the fake model ends; nothing is written.

    .venv/bin/python bench/agents_scale.py [--agents 5,10,20,40,60] [--think 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench._agents_scale_report import Measured, RunLog, memory_model, step_result, table
from bench._common import (
    OUT,
    PY,
    Interference,
    fresh_dir,
    machine,
    make_repo,
    write_json,
)
from bench._fake_claude import TOOL_CALLS, start_fake
from bench._proctree import Sampler, mem_available_mb, procs, wait_tree_empty
from tests.support import server as server_support
from tests.support.server import ServerProcess, open_sse

MODEL = "claude-sonnet-4-5"
PROMPT = "Look around the repository, then write notes.txt."
DONE = {"review", "completed", "failed", "cancelled", "interrupted"}
CPU_TARGET = MEM_TARGET = 0.05
APPROVAL_TARGET_MS = 200.0

#: Signals that stop the bench cleanly (:func:`stop_on_signals`).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

#: Events Codeyard writes about an approval itself: not the agent's next step.
BOOKKEEPING = frozenset(
    {"approval.requested", "approval.resolved", "run.status", "policy.decision"}
)


# --- one step ------------------------------------------------------------------------------


def ts_seconds(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


async def drive(
    api: httpx.AsyncClient, streams: httpx.AsyncClient, body: dict[str, Any], log: RunLog
) -> None:
    """Create one run, follow it to its end, answer its approvals at once."""
    resp = await api.post("/api/runs", json=body)
    if resp.status_code != 201:
        log.errors.append(f"create {resp.status_code}: {resp.text[:200]}")
        return
    run = resp.json()["id"]
    log.run = run
    open_trip: dict[str, float] | None = None
    call_id: str | None = None
    path = f"/api/runs/{run}/events/stream"
    async with open_sse(streams, path, params={"after": 0}) as stream:
        async for frame in stream.frames():
            seen = time.time()
            event = frame.json()
            kind, data, ts = event["type"], event["data"], ts_seconds(event["ts"])
            if kind == "approval.requested":
                log.approvals += 1
                approval = data["approval"]
                answer = await api.post(
                    f"/api/approvals/{approval['id']}/resolve", json={"decision": "approved"}
                )
                if answer.status_code != 200:
                    log.errors.append(f"resolve {answer.status_code}: {answer.text[:200]}")
                open_trip = {"requested": ts, "seen": seen, "answered": time.time()}
                call_id = approval.get("call_id")
                log.approval_ids.append(str(approval["id"]))
            elif kind == "approval.resolved" and open_trip is not None:
                open_trip["resolved"] = ts
            elif open_trip is not None and "resolved" in open_trip and kind not in BOOKKEEPING:
                # The agent's answer to the approved call is that call's result. Events the
                # agent wrote before it (its usage, the call itself) can still be on their way
                # when the approval is asked under load: counted by type, not as the answer.
                if kind == "tool.result" and data.get("call_id") == call_id:
                    open_trip["next"] = ts
                    log.trips.append(open_trip)
                    log.calls.append(str(call_id))
                    open_trip = None
                else:
                    log.next_types[kind] = log.next_types.get(kind, 0) + 1
            if kind == "tool.result":
                log.tool_results += 1
            elif kind == "error":
                log.errors.append(f"error event: {str(data)[:200]}")
            elif kind == "run.status" and data.get("to") in DONE:
                log.status = data["to"]
                return


def run_body(repo: Path, home: Path, fake_url: str) -> dict[str, Any]:
    home.mkdir(parents=True, exist_ok=True)
    env = {
        "ANTHROPIC_BASE_URL": fake_url,
        "ANTHROPIC_API_KEY": "bench",
        "HOME": str(home),
        "CLAUDE_CODE_MAX_RETRIES": "0",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    return {
        "prompt": PROMPT,
        "repo_path": str(repo),
        "provider": "claude-code",
        "model": MODEL,
        "agent_options": {"env": env, "permission_mode": "default"},
    }


async def step(
    n: int,
    server: ServerProcess,
    repo: Path,
    homes: Path,
    fake_url: str,
    deadline: float,
    timing: Path,
    profile: bool = False,
) -> dict[str, Any]:
    left = await wait_tree_empty(server.pid)
    available0 = mem_available_mb()
    me0 = procs()[server.pid]
    sampler = Sampler(server.pid)
    logs = [RunLog() for _ in range(n)]
    mon = Interference()
    mon.start()
    if profile:  # the server's profile on (main(): --profile)
        os.kill(server.pid, signal.SIGUSR1)
    started, wall0 = time.monotonic(), time.time()
    limits = httpx.Limits(max_connections=n + 10)
    timeout = httpx.Timeout(120, read=None)
    headers = {"Authorization": f"Bearer {server.token}"}
    async with (
        httpx.AsyncClient(base_url=server.url, headers=headers, timeout=120, limits=limits) as api,
        httpx.AsyncClient(
            base_url=server.url, headers=headers, timeout=timeout, limits=limits
        ) as streams,
    ):
        sampling = asyncio.create_task(sampler.run())
        bodies = [run_body(repo, homes / f"{n}-{k}", fake_url) for k in range(n)]
        runs = [
            asyncio.create_task(drive(api, streams, b, lg))
            for b, lg in zip(bodies, logs, strict=True)
        ]
        try:
            _, late = await asyncio.wait(runs, timeout=deadline)
        except asyncio.CancelledError:  # stopped (stop_on_signals): the runs end with the clients
            for task in [*runs, sampling]:
                task.cancel()
            await asyncio.gather(*runs, sampling, return_exceptions=True)
            raise
        for task in late:
            task.cancel()
        await asyncio.gather(*runs, return_exceptions=True)
        for task, lg in zip(runs, logs, strict=True):
            if task in late:
                lg.errors.append(f"not finished within {deadline} s")
            elif task.exception() is not None:
                lg.errors.append(f"{type(task.exception()).__name__}: {task.exception()}")
        wall, wall1 = time.monotonic() - started, time.time()
        leftover = await wait_tree_empty(server.pid)
        sampler.stop.set()
        await sampling
    if profile:
        os.kill(server.pid, signal.SIGUSR1)
    foreign = mon.stop()
    me1 = procs()[server.pid]
    return step_result(
        Measured(
            n=n,
            logs=logs,
            leftover_before=left,
            leftover_after=leftover,
            wall=wall,
            wall0=wall0,
            wall1=wall1,
            own_ticks=me1.ticks - me0.ticks,
            reaped_ticks=me1.child_ticks - me0.child_ticks,
            sampler=sampler,
            available0=available0,
            foreign=foreign,
            timing=timing,
        )
    )


def stop_on_signals(stopped: list[int]) -> None:
    """SIGTERM and SIGINT cancel the bench's task (the signal goes into ``stopped``), so its
    ``finally`` stops the server, which stops its runs' agents, and ``main()``'s ends the fake
    model. Why: SIGTERM's default ends this process alone, and the server, the fake model and
    the agents went on running, orphaned, taking the machine's CPU and memory."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None

    def stop(sig: int) -> None:
        stopped.append(sig)
        task.cancel()

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop, sig)


async def bench(
    args: argparse.Namespace, root: Path, fake_url: str, stopped: list[int]
) -> dict[str, Any]:
    stop_on_signals(stopped)
    sizes = sorted({int(x) for x in args.agents.split(",")})
    repo = make_repo(root / "repo")
    env = {
        "CODEYARD_MAX_CONCURRENT_RUNS": str(max(sizes)),
        "CODEYARD_RUN_CREATE_PER_MINUTE": "1000000",
        "CODEYARD_MAX_STREAMS_PER_USER": "10000",
        "CODEYARD_DEFAULT_PERMISSION_MODE": "default",
    }
    timing = root / "timing.log"
    timing.touch()
    env["CODEYARD_TIMING_FILE"] = str(timing)
    loop_log = timing.parent / "loop.log"  # step() reads it beside timing
    loop_log.touch()
    if args.loop_lag:
        env["BENCH_LOOP_FILE"] = str(loop_log)
    env["BENCH_THREADS"] = "1"  # the server's CPU by thread (bench/_threads.py)
    if not args.shared_session:
        env["BENCH_OWN_SESSION"] = "1"  # its own scheduling group (see the docstring)
    wrap = [PY, str(Path(__file__).resolve().parent / "_timed_server.py")]
    server = ServerProcess(root / "data", env=env, wrap=wrap)
    steps: list[dict[str, Any]] = []
    skipped: dict[int, str] = {}
    try:
        await server.start_async(timeout=60)
        async with server.client() as api:
            sandbox = (await api.get("/api/settings")).json()["sandbox_status"]
        warm = await step(1, server, repo, root / "homes-warm", fake_url, args.deadline, timing)
        if warm["errors"]:
            raise RuntimeError(f"the warm-up run failed: {warm['error_examples']}")
        per_agent = args.guess_mb
        for n in sizes:
            need = per_agent * n
            room = mem_available_mb() - args.reserve_gb * 1024
            if need > room:
                skipped[n] = (
                    f"predicted {need:.0f} MB (at {per_agent:.0f} MB per agent) > "
                    f"{room:.0f} MB available above the {args.reserve_gb} GB reserve"
                )
                print(f"== N={n}: skipped: {skipped[n]}", flush=True)
                continue
            print(f"== N={n}", flush=True)
            result = await step(
                n,
                server,
                repo,
                root / "homes",
                fake_url,
                args.deadline,
                timing,
                profile=args.profile is not None,
            )
            print({k: v for k, v in result.items() if k != "error_examples"}, flush=True)
            steps.append(result)
            # The next step's guard: the larger of what the tree and the machine gave up.
            per_agent = max(result["pss"]["tree_mb"], result["mem_available_drop_mb"]) / n
    finally:
        server.stop()
    model = memory_model(steps)
    return {
        "machine": machine(),
        "think_s": args.think,
        "loop_lag_ticker": args.loop_lag,
        "server_own_session": not args.shared_session,
        "tool_calls_per_run": TOOL_CALLS,
        "sandbox": {k: sandbox.get(k) for k in ("mode", "available", "version")},
        "warm_up": {k: warm[k] for k in ("wall_s", "approval_round_trip", "cpu")},
        "steps": steps,
        "skipped": skipped,
        "model": model,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agents", default="5,10,20,40,60", help="comma-separated N to run")
    ap.add_argument("--think", type=float, default=1.0, help="seconds before each model reply")
    ap.add_argument("--deadline", type=float, default=240, help="seconds per step")
    ap.add_argument("--reserve-gb", type=float, default=4.0, help="memory left to the others")
    ap.add_argument("--guess-mb", type=float, default=400, help="MB per agent before measured")
    ap.add_argument("--json", type=Path, default=OUT / "agents_scale.json")
    ap.add_argument(
        "--shared-session",
        action="store_true",
        help="run the server in this bench's session, so in its scheduling group (autogroups): "
        "how it was measured until session 20",
    )
    ap.add_argument(
        "--loop-lag",
        action="store_true",
        help="run the event-loop lag ticker in the server (its CPU then counts as the server's)",
    )
    ap.add_argument(
        "--profile",
        type=Path,
        help="cProfile the server's event-loop thread (its CPU time, not wall time) during the "
        "steps' runs (not its start-up nor the warm-up) into this file (slows it; for finding "
        "where its CPU goes, not for the shares)",
    )
    args = ap.parse_args()
    if args.profile:
        # Uvicorn re-raises SIGTERM after its graceful shutdown: the handler it restores is
        # this one, which writes the profile before the process ends.
        # SIGUSR1 turns it on and off: on for each step's runs only (step()), not for the
        # start-up and the warm-up run.
        server_support.SERVER_CODE = (
            "import cProfile, signal, sys, time; profile = cProfile.Profile(time.thread_time); "
            "on = [False]; signal.signal(signal.SIGUSR1, lambda *_: (profile.disable() if on[0] "
            "else profile.enable(), on.__setitem__(0, not on[0]))); "
            "signal.signal(signal.SIGTERM, lambda *_: (profile.disable(), "
            f"profile.dump_stats({str(args.profile.resolve())!r}), sys.exit(0))); "
            f"{server_support.SERVER_CODE}"
        )
    os.environ.update(
        GIT_AUTHOR_NAME="bench",
        GIT_AUTHOR_EMAIL="bench@codeyard.invalid",
        GIT_COMMITTER_NAME="bench",
        GIT_COMMITTER_EMAIL="bench@codeyard.invalid",
    )
    root = fresh_dir("agents_scale")
    fake, fake_url = start_fake(root, args.think)
    stopped: list[int] = []
    try:
        result = asyncio.run(bench(args, root, fake_url, stopped))
    except asyncio.CancelledError:
        if not stopped:
            raise
    finally:
        fake.terminate()
        try:
            fake.wait(10)
        except subprocess.TimeoutExpired:
            fake.kill()
            fake.wait(5)
    if stopped:
        print(f"stopped by {signal.Signals(stopped[0]).name}: nothing written", flush=True)
        sys.exit(128 + stopped[0])
    write_json(args.json, result)
    print(table(result))


if __name__ == "__main__":
    main()
