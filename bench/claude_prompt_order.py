"""Would Claude Code start its turn sooner if the prompt were written before its answer to
``initialize``? (issue 15, the per-run overhead.)

Through ``claude-agent-sdk`` the CLI gets the ``initialize`` control request, answers it
(~0.4 s after spawn: the CLI's own start-up), and only then gets the user message. ``early``
writes the user message right after the initialize request instead (a transport that appends it
to that write), so a CLI that reads its input while it starts could begin the turn sooner.

Both ways run the bundled CLI directly (no Codeyard, no sandbox) against the fake model server,
the same replies (one ``Bash`` call, then text), alternating pairs after one warm-up each.
Printed per side (medians, ms from spawn): ``initialize`` answered, ``system/init`` (the CLI
began the turn), the first and last model requests, the result, the process gone; then the
pairs' differences (early - sdk). The figure to read is "initialize answered to system/init":
how soon after its own start-up the CLI began the turn (the rest moves with the machine's load).

    .venv/bin/python bench/claude_prompt_order.py [--pairs 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from claude_agent_sdk import (
    ClaudeAgentOptions,
    ClaudeSDKClient,
    PermissionResultAllow,
    ToolPermissionContext,
)
from claude_agent_sdk._internal.transport.subprocess_cli import SubprocessCLITransport

from bench._common import fresh_dir, make_repo
from codeyard.agents.claude.process import bundled_cli
from codeyard.testing.fake_llm import FakeLLM, Reply, ToolCall

PROMPT = "Run echo hi and tell me what it printed."
MARKS = ("initialize answered", "system/init", "1st model request", "last model request")


class _EarlyPrompt(SubprocessCLITransport):
    """Writes ``early`` (one user message line) right after the initialize request."""

    early: str | None = None

    async def write(self, data: str) -> None:
        await super().write(data)
        if self.early is not None and '"initialize"' in data:
            line, self.early = self.early, None
            await super().write(line)


async def _allow(
    name: str, tool_input: dict[str, Any], context: ToolPermissionContext
) -> PermissionResultAllow:
    return PermissionResultAllow(updated_input=tool_input)


async def _nothing() -> AsyncIterator[dict[str, Any]]:
    return
    yield {}  # an async generator that never yields: the SDK's "no prompt stream"


async def one(fake: FakeLLM, early: bool, home: Path, cwd: Path) -> dict[str, float]:
    tool = ToolCall("Bash", {"command": "echo hi", "description": "Say hi"})
    fake.script([Reply(tool_calls=(tool,)), Reply(text="It printed hi.")])
    before = len(fake.model_calls())
    env = {
        "ANTHROPIC_BASE_URL": fake.url,
        "ANTHROPIC_API_KEY": "bench",
        "HOME": str(home),
        "CLAUDE_CODE_MAX_RETRIES": "0",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    options = ClaudeAgentOptions(
        cwd=str(cwd),
        cli_path=str(bundled_cli()),
        model="claude-sonnet-4-5",
        env=env,
        system_prompt={"type": "preset", "preset": "claude_code"},
        can_use_tool=_allow,
        include_partial_messages=True,
    )
    message = {
        "type": "user",
        "message": {"role": "user", "content": PROMPT},
        "parent_tool_use_id": None,
        "session_id": "default",
    }
    started = time.time()
    if early:
        # What the SDK does for can_use_tool (permission prompts over the control protocol).
        transport = _EarlyPrompt(
            prompt=_nothing(), options=replace(options, permission_prompt_tool_name="stdio")
        )
        transport.early = json.dumps(message) + "\n"
        client = ClaudeSDKClient(options, transport=transport)
        await client.connect()
    else:
        client = ClaudeSDKClient(options)
        await client.connect()
    marks = {"initialize answered": time.time()}
    if not early:
        await client.query(PROMPT)
    query: Any = client._query
    async for raw in query.receive_messages():
        kind = f"{raw.get('type')}/{raw.get('subtype')}" if raw.get("subtype") else raw.get("type")
        marks.setdefault(str(kind), time.time())
        marks.setdefault(str(raw.get("type")), marks[str(kind)])
        if raw.get("type") == "result":
            break
    await client.disconnect()
    gone = time.time()
    calls = fake.model_calls()[before:]
    if len(calls) != 2:
        raise RuntimeError(f"expected 2 model calls, saw {len(calls)}")
    marks |= {"1st model request": calls[0].at, "last model request": calls[-1].at}
    marks |= {"process gone": gone}
    wanted = (*MARKS, "result", "process gone")
    out = {k: round((marks[k] - started) * 1000, 1) for k in wanted}
    # The figure that matters: how soon after its start-up the CLI began the turn.
    out["initialize answered to system/init"] = round(
        out["system/init"] - out["initialize answered"], 1
    )
    return out


async def main(pairs: int, home: Path, cwd: Path) -> None:
    rows: dict[str, list[dict[str, float]]] = {"sdk": [], "early": []}
    with FakeLLM() as fake:
        await one(fake, False, home, cwd)  # warm-ups, not counted
        await one(fake, True, home, cwd)
        for i in range(pairs):
            for side in ("sdk", "early") if i % 2 == 0 else ("early", "sdk"):
                rows[side].append(await one(fake, side == "early", home, cwd))
    print(f"{pairs} pairs; medians, ms from spawn")
    keys = list(rows["sdk"][0])
    print("| side | " + " | ".join(keys) + " |")
    print("|---|" + "---:|" * len(keys))
    for side, got in rows.items():
        cells = " | ".join(f"{statistics.median(r[k] for r in got):g}" for k in keys)
        print(f"| {side} | {cells} |")
    pairs_of = list(zip(rows["early"], rows["sdk"], strict=True))
    diffs = " | ".join(f"{statistics.median(e[k] - s[k] for e, s in pairs_of):+g}" for k in keys)
    print(f"| early - sdk (median of pairs) | {diffs} |")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=10)
    root = fresh_dir("claude_prompt_order")
    home = root / "home"
    home.mkdir()
    asyncio.run(main(ap.parse_args().pairs, home, make_repo(root / "repo")))
