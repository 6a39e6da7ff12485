"""Workflow engine benchmarks (issue 20); writes its section of ``bench/RESULTS.md``.

1. Engine overhead per step: N sequential run steps of the script provider (one ``say`` each)
   as a workflow, against the same N runs created and awaited one after another through the
   API (polled every 5 ms). Overhead per step = (workflow wall time - runs wall time) / N.
   Also N sequential ``if`` steps (no run at all): the engine's own cost per step (events
   written, graph scheduling).
2. One execution of a ``parallel`` step with 200 script run steps: wall time and errors.

The app runs in-process over httpx's ASGI transport (as the tests do), on SQLite, with the
sandbox setting as configured on this machine.

    .venv/bin/python bench/workflows.py [--steps 20] [--fan 200]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import BENCH, Interference, fresh_dir, machine, make_repo
from codeyard.app import create_app
from codeyard.config import Settings
from codeyard.services import runs as run_service

RESULTS = BENCH / "RESULTS.md"
BEGIN, END = "<!-- workflows:begin -->", "<!-- workflows:end -->"
TOKEN = "cy_bench_token"
SAY = {"scenario": {"steps": [{"say": "ok"}]}}


@contextlib.asynccontextmanager
async def api(data: Path, concurrency: int) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(data_dir=data, admin_token=TOKEN, max_concurrent_runs=concurrency)
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://localhost", headers=headers, timeout=600
        ) as client:
            yield client


#: Seconds between status polls; the CPU pass polls coarsely so polling costs little CPU.
POLL = {"every": 0.005}


async def until(client: httpx.AsyncClient, url: str, statuses: set[str]) -> dict[str, Any]:
    while True:
        body: dict[str, Any] = (await client.get(url)).json()
        if body["status"] in statuses:
            return body
        await asyncio.sleep(POLL["every"])


async def if_cpu_ms(client: httpx.AsyncClient, repo: Path, n: int) -> float:
    """Server-process CPU milliseconds per pure (``if``) step (``time.process_time``: the app,
    the engine and the writer, all in this process), awaited with a coarse poll so polling
    costs little. Unlike wall time it hardly depends on what else the machine runs."""
    POLL["every"] = 0.25
    try:
        cpu = time.process_time()
        _, body = await workflow(client, repo, "ifs-cpu", ifs(n))
        used = time.process_time() - cpu
    finally:
        POLL["every"] = 0.005
    assert body["status"] == "completed", body["status_reason"]
    return used / n * 1000


POSTS: list[float] = []  # seconds per POST /api/runs (the run service's own creation cost)
#: run id → seconds ``services.runs.create`` took for it, timed in-process: the part of a run
#: step's latency that is the run's own creation (a plain ``POST /api/runs`` pays it too).
CREATES: dict[str, float] = {}
_create = run_service.create


async def _timed_create(*args: Any, **kwargs: Any) -> dict[str, Any]:
    started = time.perf_counter()
    run: dict[str, Any] = await _create(*args, **kwargs)
    CREATES[run["id"]] = time.perf_counter() - started
    return run


run_service.create = _timed_create  # type: ignore[assignment]  # a timer around the real one


async def plain_runs(client: httpx.AsyncClient, repo: Path, n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        body = {"prompt": "p", "repo_path": str(repo), "provider": "script", "agent_options": SAY}
        sent = time.perf_counter()
        run = (await client.post("/api/runs", json=body)).json()
        POSTS.append(time.perf_counter() - sent)
        await until(client, f"/api/runs/{run['id']}", {"review", "failed"})
    return time.perf_counter() - started


async def workflow(
    client: httpx.AsyncClient, repo: Path, name: str, steps: list[dict[str, Any]]
) -> tuple[float, dict[str, Any]]:
    resp = await client.post("/api/workflows", json={"definition": {"name": name, "steps": steps}})
    resp.raise_for_status()
    started = time.perf_counter()
    execution = (
        await client.post(
            f"/api/workflows/{resp.json()['id']}/execute", json={"repo_path": str(repo)}
        )
    ).json()["execution_id"]
    body = await until(
        client, f"/api/workflows/executions/{execution}", {"completed", "failed", "cancelled"}
    )
    return time.perf_counter() - started, body


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def step_latencies(
    client: httpx.AsyncClient, body: dict[str, Any]
) -> list[tuple[float, float, float]]:
    """Per run step, from the logs: (run created - previous step completed), (step completed
    - run reached review), and the run service's creation time of its run (in-process)."""
    url = f"/api/workflows/executions/{body['id']}/events"
    events = (await client.get(url, params={"limit": 500})).json()["data"]
    done = {
        e["data"]["key"]: _ts(e["ts"]) for e in events if e["type"] == "workflow.step.completed"
    }
    previous = _ts(events[0]["ts"])  # workflow.execution.started
    out = []
    for step in sorted(body["steps"], key=lambda s: int(s["key"][1:])):
        run_events = (await client.get(f"/api/runs/{step['run_id']}/events")).json()["data"]
        created = _ts(run_events[0]["ts"])
        review = next(
            _ts(e["ts"])
            for e in run_events
            if e["type"] == "run.status" and e["data"]["to"] == "review"
        )
        creating = CREATES.get(step["run_id"], 0.0)
        out.append((created - previous, done[step["key"]] - review, creating))
        previous = done[step["key"]]
    return out


def chain(n: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"s{i}",
            "type": "run",
            "provider": "script",
            "prompt": "p",
            "agent_options": SAY,
            **({"depends_on": [f"s{i - 1}"]} if i else {}),
        }
        for i in range(n)
    ]


def ifs(n: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"c{i}",
            "type": "if",
            "condition": "1 + 1 == 2",
            **({"depends_on": [f"c{i - 1}"]} if i else {}),
        }
        for i in range(n)
    ]


async def measure(steps: int, fan: int) -> dict[str, Any]:
    out: dict[str, Any] = {"steps": steps, "fan": fan, "load_before": os.getloadavg()[0]}
    out["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    base = fresh_dir("workflows")
    repo = make_repo(base / "repo")
    guard = Interference()
    async with api(base / "data", concurrency=4) as client:
        await plain_runs(client, repo, 2)  # warm up (first worktree, imports)
        pairs = []
        for trial in range(3):
            guard.start()
            runs_s = await plain_runs(client, repo, steps)
            wf_s, body = await workflow(client, repo, f"chain{trial}", chain(steps))
            assert body["status"] == "completed", body["status_reason"]
            foreign = guard.stop()
            split = await step_latencies(client, body)
            latencies = sorted(a + b for a, b, _ in split)
            own = sorted(a + b - c for a, b, c in split)
            pairs.append(
                {
                    "runs_s": runs_s,
                    "workflow_s": wf_s,
                    "overhead_ms": (wf_s - runs_s) / steps * 1000,
                    "foreign": foreign,
                    "step_ms_median": statistics.median(latencies) * 1000,
                    "step_ms_max": latencies[-1] * 1000,
                    "to_run_ms": statistics.median(a for a, _, _ in split) * 1000,
                    "after_run_ms": statistics.median(b for _, b, _ in split) * 1000,
                    "create_ms": statistics.median(c for _, _, c in split) * 1000,
                    "own_ms_median": statistics.median(own) * 1000,
                    "own_ms_max": own[-1] * 1000,
                    "post_ms": statistics.median(POSTS[-steps:]) * 1000,
                }
            )
        out["chain"] = pairs
        if_s, body = await workflow(client, repo, "ifs", ifs(100))
        assert body["status"] == "completed", body["status_reason"]
        out["if_ms_per_step"] = if_s / 100 * 1000
        out["if_cpu_ms"] = await if_cpu_ms(client, repo, 100)
    out["load_after"] = os.getloadavg()[0]
    if fan == 0:  # keep the last fan-out figures (it takes many minutes on a busy machine)
        last = json.loads((BENCH / "out" / "workflows.json").read_text())
        kept = {k: v for k, v in last.items() if k.startswith("fan") and k != "fan"}
        return out | kept | {"fan": last["fan"], "fan_from": last.get("fan_from") or "earlier"}
    async with api(base / "fan-data", concurrency=8) as client:
        steps_ = [
            {
                "id": "fan",
                "type": "parallel",
                "steps": [
                    {
                        "id": f"r{i}",
                        "type": "run",
                        "provider": "script",
                        "prompt": f"p{i}",
                        "agent_options": SAY,
                    }
                    for i in range(fan)
                ],
            }
        ]
        guard.start()
        fan_s, body = await workflow(client, repo, "fan", steps_)
        out["fan_foreign"] = guard.stop()
        children = next(s for s in body["steps"] if s["key"] == "fan")["output"] or {}
        failed = [s for s in body["steps"] if s["status"] == "failed"]
        out["fan_s"] = fan_s
        out["fan_status"] = body["status"]
        out["fan_completed"] = len(children.get("children") or {})
        out["fan_errors"] = len(failed) + (0 if body["status"] == "completed" else 1)
    return out


def render(r: dict[str, Any], facts: dict[str, Any], commit: str) -> str:
    med = statistics.median(p["step_ms_median"] for p in r["chain"])
    own = statistics.median(p["own_ms_median"] for p in r["chain"])
    rows = "\n".join(
        f"| {i + 1} | {p['own_ms_median']:.1f} ms | {p['own_ms_max']:.1f} ms "
        f"| {p['step_ms_median']:.1f} ms | {p['step_ms_max']:.1f} ms "
        f"| {p['to_run_ms']:.1f} ms | {p['create_ms']:.1f} ms | {p['post_ms']:.1f} ms "
        f"| {p['after_run_ms']:.1f} ms "
        f"| {p['runs_s']:.2f} s | {p['workflow_s']:.2f} s | {p['overhead_ms']:.1f} ms "
        f"| {p['foreign']:.0%} |"
        for i, p in enumerate(r["chain"])
    )
    n = r["steps"]
    head = "| trial | engine alone / step, median | max | between runs / step, median | max "
    head += "| to the run | run service create | POST /api/runs | after the run "
    head += f"| {n} plain runs | workflow of {n} | difference / step | foreign CPU |"
    busy = max(p["foreign"] for p in r["chain"]) > 0.10
    target = "**met**" if own < 50 else "**not met**"
    if busy:
        target += " (measured on a busy machine: re-measure on an idle one)"
    fan_target = (
        "**met**" if r["fan_errors"] == 0 and r["fan_completed"] == r["fan"] else "**not met**"
    )
    return f"""{BEGIN}
## Workflows (issue 20)

- Measured: {facts["date"]}; {facts["nproc"]} CPUs, Python {facts["python"]},
  SQLite {facts["sqlite"]}; commit {commit}
- `bench/workflows.py`: the app in-process over httpx's ASGI transport on SQLite; script
  provider runs (one `say`), real git worktrees, sandbox as configured. The machine was shared
  with other engineers' work ('foreign CPU'); 1-minute load average {r.get("load_before", 0):.1f}
  before the per-step trials, {r.get("load_after", 0):.1f} after (2 CPUs).

### Engine overhead per run step (target: < 50 ms beyond the run itself)

{r["steps"]} sequential run steps as one workflow. From the logs, per step: (its run's
`run.created` - the previous step's `workflow.step.completed`) + (its `workflow.step.completed` -
the run's `run.status` to `review`): the time between two runs, the run's duration excluded
('between runs'). It still holds the run service's own creation checks (git, sandbox probe, the
insert), which a plain `POST /api/runs` also pays: `services.runs.create` is timed in-process
for each step's run ('run service create') and taken off each step's figure: 'engine alone'.
The engine wakes on the runs' `run.status` events (no status polling) and writes two events per
run step (`workflow.step.run`, `workflow.step.completed`).
Engine alone, median of the trials' medians: **{own:.1f} ms** per step {target}; between runs,
creation included: **{med:.1f} ms**. For reference, the whole
workflow against the same {r["steps"]} runs created and awaited one after another through
`POST /api/runs` (polled every 5 ms): that difference is dominated by the runs' own variance on
a shared machine (negative when the workflow's runs happened to be faster).

{head}
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
{rows}

Engine-only cost (100 sequential `if` steps, no run): {r["if_ms_per_step"]:.1f} ms per step
wall (one event written per pure step, through the one writer), and
**{r.get("if_cpu_ms", float("nan")):.1f} ms of server CPU** per step (``time.process_time`` of
the process, polled every 250 ms): the load-independent figure. A run step writes two such
events (run, completed) and its run's row is read once per `run.status` event of that run; a
difference of wall or CPU time between a workflow's run steps and plain runs was tried and is
lost in the runs' own variance on this machine (it came out from -32 to +85 ms per step).

### 200 parallel script run steps (target: completes with 0 errors)

One execution, one `parallel` step with {r["fan"]} run steps (`max_concurrent_runs` 8){
        f" (not re-measured this time: the figures of the run of {r['fan_from']})"
        if r.get("fan_from")
        else ""
    }:
{r["fan_s"]:.1f} s wall, {r["fan_completed"]}/{r["fan"]} completed, {r["fan_errors"]} errors,
execution `{r["fan_status"]}` {fan_target} (foreign CPU {r["fan_foreign"]:.0%}).
{END}
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--fan", type=int, default=200)
    args = parser.parse_args()
    result = asyncio.run(measure(args.steps, args.fan))
    facts = machine()
    import subprocess

    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    (BENCH / "out").mkdir(exist_ok=True)
    (BENCH / "out" / "workflows.json").write_text(json.dumps(result, indent=2))
    section = render(result, facts, commit)
    old = RESULTS.read_text()
    if BEGIN in old:
        new = old[: old.index(BEGIN)] + section.rstrip("\n") + old[old.index(END) + len(END) :]
    else:
        new = old.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(new)
    print(section)


if __name__ == "__main__":
    main()
