"""Claude Code's usage counted live (issue 14): the real binary (bundled in claude-agent-sdk)
against the fake model server, through the Codeyard API.

The CLI gives exact figures only in its result at the turn's end; the run's figures must move
while the turn runs and end at the CLI's own total with no model call counted twice.
"""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from codeyard.testing.fake_llm import FakeLLM, Reply, ToolCall, Usage
from tests.clis.claude_support import WAIT, create, options
from tests.clis.support import approvals, events
from tests.conftest import Api

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("needs_claude")]


async def test_usage_grows_during_the_turn_and_ends_at_the_clis_own_total(
    sqlite_api: Api, git_repo: Path, fake: FakeLLM, tmp_path: Path
) -> None:
    """Claude Code reports usage exactly only in its result: the run's figures must still move
    while the turn runs (here: while an approval waits), then end at the CLI's own total, with
    no model message counted twice."""
    api = sqlite_api
    first_call, last_call = Usage(100, 40, 5, 7), Usage(200, 30, 50, 10)
    fake.script(
        [
            Reply(
                text="I will record it.",
                tool_calls=(ToolCall("Bash", {"command": "echo live > live.txt"}),),
                usage=first_call,
            ),
            Reply(text="Recorded.", usage=last_call),
        ]
    )
    pol = await api.post(
        "/api/policies",
        json={"name": "ask-live", "rules": [{"tool": "Bash", "action": "ask"}]},
    )
    assert pol.status_code == 201, pol.text
    pset = await api.post("/api/policy-sets", json={"name": "s", "policy_ids": [pol.json()["id"]]})
    opts = options(fake, tmp_path / "home", permission_mode="auto")
    run = await create(api, git_repo, opts, "Record it", policy_set_ids=[pset.json()["id"]])
    pending = (await approvals(api, run["id"]))[0]

    # Mid-turn, before any result: the first model message, counted once (its three content
    # blocks repeat its usage) with its final output count, priced as an estimate.
    live = (
        first_call.input_tokens,
        first_call.output_tokens,
        first_call.cache_read_tokens,
        first_call.cache_write_tokens,
    )
    keys = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
    with anyio.fail_after(30):
        while True:
            mid = (await api.get(f"/api/runs/{run['id']}")).json()
            if tuple(mid["usage"][k] for k in keys) == live:
                break
            assert all(mid["usage"][k] <= n for k, n in zip(keys, live, strict=True)), mid
            await anyio.sleep(0.1)
    assert mid["status"] == "waiting" and mid["usage"]["cost_usd"] > 0, mid
    assert await events(api, run["id"], "turn.completed") == []
    estimates = [e["data"] for e in await events(api, run["id"], "usage")]
    assert estimates and {u["cost_source"] for u in estimates} == {"estimate"}

    resp = await api.post(f"/api/approvals/{pending['id']}/resolve", json={"decision": "approved"})
    assert resp.status_code == 200, resp.text
    done = await api.wait_status(run["id"], "review", "failed", timeout=WAIT)
    assert done["status"] == "review", done

    # The end: exactly the CLI's own figures for the turn (its result line in the raw log).
    log = (await api.get(f"/api/runs/{run['id']}/logs")).text
    (result,) = [r for r in map(json.loads, log.splitlines()) if r.get("type") == "result"]
    own = result["model_usage_since_last_result"] or result["modelUsage"]
    names = ("inputTokens", "outputTokens", "cacheReadInputTokens", "cacheCreationInputTokens")
    cli_total = tuple(sum(m[n] for m in own.values()) for n in names)
    assert tuple(done["usage"][k] for k in keys) == cli_total
    assert done["usage"]["cost_usd"] == pytest.approx(result["total_cost_usd"], abs=2e-6)
    # No double counting: the live events hold each model message once; the settling event
    # holds only what they could not see (the CLI's side calls, if it made any).
    usages = [e["data"] for e in await events(api, run["id"], "usage")]
    streamed = [u for u in usages if u["cost_source"] == "estimate"]
    both = (first_call, last_call)
    assert tuple(sum(u[k] for u in streamed) for k in keys) == tuple(
        sum(getattr(c, k) for c in both) for k in keys
    )
    side = [r for r in fake.requests if r.path == "/v1/messages" and not r.model_call]
    settled = [u for u in usages if u["cost_source"] == "reported"]
    assert sum(u["input_tokens"] for u in settled) == 100 * len(side)
    assert len(await events(api, run["id"], "turn.completed")) == 1
