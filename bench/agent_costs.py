"""What each ACP agent CLI costs to run: start-up time and peak memory, bare and through Codeyard
(issue 23).

Both sides start the same command with the same environment (what the provider's ``launch``
builds for a run, pointed at ``codeyard.testing.fake_llm`` with the contract suite's options)
and the model answers one prompt with text, so the numbers are the CLI's own cost.

- **bare**: the command spoken to over ACP by a minimal client in this process:
  spawn → ``initialize`` and ``session/new`` answered (start-up, as Codeyard's
  ``agent.session`` marks it), then one ``session/prompt``; peak memory = the largest sum
  of RSS over the CLI's process tree, sampled every 20 ms.
- **codeyard**: a real server process (``tests/support/server.py``), ``POST /api/runs`` to the
  ``turn.completed`` frame on its SSE stream; start-up = ``running`` → ``agent.session`` (the
  CLI's start plus ``initialize`` and ``session/new``); peak memory = the largest RSS sum over
  the server's descendants (the agent, its launcher and the sandbox), the server itself and
  its own Python helpers apart.

Runs alternate sides after one uncounted warm-up of each; medians are reported.

    .venv/bin/python bench/agent_costs.py [--runs 3] [--only qwen,codex-acp] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import Interference, fresh_dir, machine, make_repo, write_json
from codeyard.agents.acp.provider import AcpProvider
from codeyard.agents.aider import AiderProvider
from codeyard.agents.base import Provider, TurnContext
from codeyard.domain.tools import Decision
from codeyard.testing.fake_llm import FakeLLM, Reply
from tests.clis.acp_cases import CASES, AgentCase
from tests.clis.test_aider import MODEL as AIDER_MODEL
from tests.clis.test_aider import options as aider_options
from tests.support.server import ServerProcess, open_sse

PROMPT = "Say hello."


@dataclass(frozen=True)
class Extra:
    """An ACP-driven agent measured here that is no case of the ACP contract suite (aider: its
    model writes no tool calls); only what this bench reads of a case."""

    name: str
    provider: Callable[[], Provider]
    cli_version: str
    model: str
    options: Callable[..., dict[str, Any]]


AIDER = Extra("aider", AiderProvider, "0.86.2", AIDER_MODEL, aider_options)
SAMPLE_S = 0.02


class PeakRss:
    """The largest RSS sum over a process tree, sampled in a thread-free asyncio task."""

    def __init__(self, root: int, include_root: bool = True) -> None:
        self.root, self.include_root, self.peak = root, include_root, 0
        #: RSS by process name at the peak (what the memory was).
        self.at_peak: dict[str, int] = {}
        self._task: asyncio.Task[None] | None = None

    def _sample(self) -> tuple[int, dict[str, int]]:
        try:
            top = psutil.Process(self.root)
            procs = top.children(recursive=True) + ([top] if self.include_root else [])
        except psutil.Error:
            return 0, {}
        by_name: dict[str, int] = {}
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                if "--version" in proc.cmdline():
                    continue  # the server probing its providers (/api/providers), not the run
                name = proc.name()
                bridge = any(part.endswith("bridge.py") for part in proc.cmdline())
                if not self.include_root and name.startswith("python") and not bridge:
                    continue  # the server's own Python helpers, not the agent (aider's bridge is)
                by_name[name] = by_name.get(name, 0) + proc.memory_info().rss
        return sum(by_name.values()), by_name

    async def _loop(self) -> None:
        while True:
            total, by_name = self._sample()
            if total > self.peak:
                self.peak, self.at_peak = total, by_name
            await asyncio.sleep(SAMPLE_S)

    async def __aenter__(self) -> PeakRss:
        self._task = asyncio.ensure_future(self._loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def _allow(_request: Any) -> Decision:
    return Decision(True)


async def _no_answer(_question: str) -> str:
    return ""


def _launch(
    case: AgentCase | Extra, fake: FakeLLM, home: Path, tree: Path
) -> tuple[list[str], dict[str, str], list[Path]]:
    provider = case.provider()
    assert isinstance(provider, AcpProvider)
    options = case.options(fake, home)
    ctx = TurnContext(
        run_id="bench",
        turn=1,
        prompt=PROMPT,
        source="create",
        worktree=tree,
        model=case.model,
        options=options,
        session_id=None,
        resume_state={},
        resumed_source=None,
        decide=_allow,
        ask_operator=_no_answer,
    )
    launch = provider.launch(ctx)
    return launch.argv, {**os.environ, **launch.env}, launch.scratch


class _Client:
    """Just enough ACP (JSON-RPC over stdio) for one prompt; permission requests allowed."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc, self.next_id = proc, 0

    async def call(self, method: str, params: dict[str, Any]) -> Any:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.next_id += 1
        wanted = self.next_id
        message = {"jsonrpc": "2.0", "id": wanted, "method": method, "params": params}
        self.proc.stdin.write((json.dumps(message) + "\n").encode())
        await self.proc.stdin.drain()
        async for raw in self.proc.stdout:
            try:
                got = json.loads(raw)
            except ValueError:
                continue
            if got.get("method") == "session/request_permission":
                options = got["params"]["options"]
                chosen = next(o["optionId"] for o in options if o["kind"] == "allow_once")
                answer = {"outcome": {"outcome": "selected", "optionId": chosen}}
                reply = {"jsonrpc": "2.0", "id": got["id"], "result": answer}
                self.proc.stdin.write((json.dumps(reply) + "\n").encode())
                await self.proc.stdin.drain()
            elif got.get("id") == wanted and "method" not in got:
                if "error" in got:
                    raise RuntimeError(f"{method}: {got['error']}")
                return got.get("result")
        raise RuntimeError(f"the agent exited before it answered {method}")


async def run_bare(
    case: AgentCase | Extra, fake: FakeLLM, home: Path, tree: Path
) -> dict[str, float]:
    fake.script([Reply(text="Hello.")])
    argv, env, scratch = _launch(case, fake, home, tree)
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *argv,
        cwd=tree,
        env=env,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
        limit=2**24,
    )
    try:
        async with PeakRss(proc.pid) as rss:
            client = _Client(proc)
            caps = {"fs": {"readTextFile": False, "writeTextFile": False}, "terminal": False}
            await client.call("initialize", {"protocolVersion": 1, "clientCapabilities": caps})
            if case.name == "gemini":
                await client.call("authenticate", {"methodId": "gemini-api-key"})
            session = await client.call("session/new", {"cwd": str(tree), "mcpServers": []})
            if launch_model := (case.model if case.name == "claude-acp" else None):
                params = {"sessionId": session["sessionId"], "modelId": launch_model}
                await client.call("session/set_model", params)
            ready = time.perf_counter()  # what Codeyard's agent.session marks
            prompt = [{"type": "text", "text": PROMPT}]
            await client.call(
                "session/prompt", {"sessionId": session["sessionId"], "prompt": prompt}
            )
            done = time.perf_counter()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        await proc.wait()
        for folder in scratch:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"    bare peak by process: {_mb(rss.at_peak)}", flush=True)
    return {"startup_s": ready - started, "total_s": done - started, "peak_mb": rss.peak / 2**20}


def _mb(by_name: dict[str, int]) -> dict[str, int]:
    return {name: round(rss / 2**20) for name, rss in sorted(by_name.items())}


def _ts(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["ts"].replace("Z", "+00:00")).timestamp()


async def run_codeyard(
    case: AgentCase | Extra, fake: FakeLLM, server: ServerProcess, repo: Path, home: Path
) -> dict[str, float]:
    fake.script([Reply(text="Hello.")])
    body = {
        "prompt": PROMPT,
        "repo_path": str(repo),
        "provider": case.name,
        "model": case.model,
        "agent_options": case.options(fake, home),
    }
    async with server.client(timeout=180) as api:
        started = time.perf_counter()
        async with PeakRss(server.pid, include_root=False) as rss:
            resp = await api.post("/api/runs", json=body)
            assert resp.status_code == 201, resp.text
            run = resp.json()["id"]
            async with open_sse(api, f"/api/runs/{run}/events/stream", params={"after": 0}) as sse:
                async for frame in sse.frames():
                    if frame.event == "turn.completed":
                        break
                    if frame.event == "run.status" and frame.json()["data"]["to"] == "failed":
                        raise RuntimeError(f"codeyard {case.name} run failed: {frame.data}")
        done = time.perf_counter()
        events = (await api.get(f"/api/runs/{run}/events", params={"limit": 500})).json()["data"]
        await api.post(f"/api/runs/{run}/resolve", json={"action": "discard"})
    print(f"    codeyard peak by process: {_mb(rss.at_peak)}", flush=True)
    running = next(e for e in events if e["type"] == "run.status" and e["data"]["to"] == "running")
    session = next(e for e in events if e["type"] == "agent.session")
    return {
        "startup_s": _ts(session) - _ts(running),
        "total_s": done - started,
        "peak_mb": rss.peak / 2**20,
    }


async def measure(case: AgentCase | Extra, runs: int, root: Path) -> dict[str, Any]:
    repo = make_repo(root / f"{case.name}-repo")
    tree = make_repo(root / f"{case.name}-tree")
    homes = {side: root / f"{case.name}-home-{side}" for side in ("bare", "codeyard")}
    for home in homes.values():
        home.mkdir(parents=True, exist_ok=True)
    server = ServerProcess(root / f"{case.name}-data")
    server.start(timeout=180)  # a loaded machine starts it slowly
    rows: list[dict[str, dict[str, float]]] = []
    try:
        with FakeLLM() as fake:
            sides: dict[str, Callable[[], Any]] = {
                "bare": lambda: run_bare(case, fake, homes["bare"], tree),
                "codeyard": lambda: run_codeyard(case, fake, server, repo, homes["codeyard"]),
            }
            for side in sides.values():  # warm-up, not counted
                await side()
            mon = Interference()
            mon.start()
            for i in range(runs):
                order = ("bare", "codeyard") if i % 2 == 0 else ("codeyard", "bare")
                rows.append({side: await sides[side]() for side in order})
                print(f"  {case.name} run {i + 1}: {rows[-1]}", flush=True)
            foreign = mon.stop()
    finally:
        server.stop()

    def med(side: str, key: str) -> float:
        return round(statistics.median(r[side][key] for r in rows), 3)

    return {
        "provider": case.name,
        "cli_version": case.cli_version,
        "runs": runs,
        **{
            f"{side}_{key}": med(side, key)
            for side in ("bare", "codeyard")
            for key in rows[0][side]
        },
        "foreign_cpu": foreign,
    }


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| provider (CLI version) | runs | start-up bare | start-up via Codeyard | turn total bare "
        "| turn total via Codeyard | peak RSS bare | peak RSS via Codeyard | foreign CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['provider']} ({r['cli_version']}) | {r['runs']} | {r['bare_startup_s']:.2f} s "
            f"| {r['codeyard_startup_s']:.2f} s | {r['bare_total_s']:.2f} s "
            f"| {r['codeyard_total_s']:.2f} s | {r['bare_peak_mb']:.0f} MB "
            f"| {r['codeyard_peak_mb']:.0f} MB | {r['foreign_cpu']:.0%} |"
        )
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated providers (default: all)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    wanted = {n for n in args.only.split(",") if n}
    root = fresh_dir("agent_costs")
    results = []
    for case in [*CASES, AIDER]:
        if wanted and case.name not in wanted:
            continue
        problem = case.provider().problem()
        if problem is not None:
            print(f"{case.name}: skipped ({problem})", flush=True)
            continue
        results.append(await measure(case, args.runs, root))
    print(f"\n{datetime.now().isoformat(timespec='seconds')}; {machine()}\n")
    print(table(results))
    if args.json:
        write_json(args.json, results)


if __name__ == "__main__":
    asyncio.run(main())
