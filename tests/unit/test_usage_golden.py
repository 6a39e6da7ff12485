"""Golden usage per CLI: recorded streams → adapter deltas → pricing → rollup increments.

Each recording is real CLI output (see the normalizer tests that own them). The expected totals
are read off the raw stream *independently* of the normalizers (the CLI's last cumulative total,
or the sum of per-turn counts, with cache partitions made disjoint), so the two classic mistakes
fail here: summing cumulative counters, and counting cached input twice (OpenAI/Gemini count
cached tokens inside the input count; Anthropic does not).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from codeyard.agents.base import UsageTotal
from codeyard.analytics.fold import FoldInput, RunDims, fold
from codeyard.analytics.run_queries import flag_cost
from codeyard.domain.events import NewEvent
from codeyard.executor.sink import add_usage, usage_remainder
from codeyard.pricing import cost_usd, price_usage
from tests.unit import test_acp_normalize as acp
from tests.unit import test_claude_normalize as claude
from tests.unit import test_codex_normalize as codex

DATA = Path(__file__).parent / "data"


def rollup(items: list[Any], model: str | None) -> dict[str, float]:
    """What the sink and the rollup consumer make of a turn's adapter items, for one run.

    ``model`` is the run's model (None: the CLI's default, known from its session event)."""
    events = []
    session_model = model
    since_total = add_usage({}, {})
    for item in items:
        if isinstance(item, UsageTotal):  # the sink records what the live counts left out
            rest = usage_remainder(item.usage, since_total)
            since_total = add_usage({}, {})
            if rest is None:
                continue
            data = json.dumps(price_usage(rest.data, session_model))
            events.append(FoldInput("r", "usage", "2026-12-03T09:00:00.000Z", data))
            continue
        if not isinstance(item, NewEvent) or item.type not in ("usage", "agent.session"):
            continue
        data = item.data
        if item.type == "agent.session":
            session_model = data.get("model") or session_model
        else:
            data = price_usage(data, session_model)  # what the executor's sink stores
            since_total = add_usage(since_total, data, digits=None)
        events.append(FoldInput("r", item.type, "2026-12-03T09:00:00.000Z", json.dumps(data)))
    dims = {"r": RunDims("p", "repo", "cli", model or "", "", "")}
    return fold(events, dims, {}).run_totals("r")


def tokens(totals: dict[str, float]) -> tuple[int, int, int, int]:
    return (
        int(totals["input_tokens"]),
        int(totals["output_tokens"]),
        int(totals["cache_read_tokens"]),
        int(totals["cache_write_tokens"]),
    )


def test_codex_cumulative_totals_become_deltas_with_cached_input_split_out() -> None:
    lines = [json.loads(x) for x in (DATA / "codex_tools.jsonl").read_text().splitlines()]
    last = [x for x in lines if x.get("method") == "thread/tokenUsage/updated"][-1]
    total = last["params"]["tokenUsage"]["total"]
    expected = (
        total["inputTokens"] - total["cachedInputTokens"] - total["cacheWriteInputTokens"],
        total["outputTokens"],
        total["cachedInputTokens"],
        total["cacheWriteInputTokens"],
    )
    assert expected == (350, 54, 50, 0)
    items, _, _ = codex.replay("tools")
    totals = rollup(items, "gpt-5-codex")
    assert tokens(totals) == expected
    assert totals["usage_events"] == 3  # three cumulative updates, three deltas
    priced = cost_usd(
        "gpt-5-codex",
        dict(
            zip(
                ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"),
                expected,
                strict=True,
            )
        ),
    )
    assert totals["computed_cost_usd"] == pytest.approx(priced)
    assert totals["reported_events"] == 0  # Codex reports no cost: Codeyard's is the cost
    assert totals["cost_usd"] == pytest.approx(priced)


def test_claude_code_result_matches_its_own_cost_to_the_cent() -> None:
    raw = [json.loads(x) for x in claude.RECORDED.read_text().splitlines()]
    (result,) = [x for x in raw if x.get("type") == "result"]
    (model_usage,) = result["modelUsage"].values()
    totals = rollup(claude.replay(raw), None)  # the model comes from the session event
    assert tokens(totals) == (
        model_usage["inputTokens"],
        model_usage["outputTokens"],
        model_usage["cacheReadInputTokens"],
        model_usage["cacheCreationInputTokens"],
    )
    assert totals["reported_cost_usd"] == pytest.approx(result["total_cost_usd"])
    assert totals["computed_cost_usd"] == pytest.approx(result["total_cost_usd"], rel=1e-6)
    assert not flag_cost(
        totals["computed_cost_usd"], totals["reported_cost_usd"], int(totals["reported_events"])
    )


def test_claude_code_cumulative_cost_across_results_is_not_summed() -> None:
    state = claude.NormalizeState()
    items = claude.replay([claude._old_result(0.0016, 200, 24)], state)
    items += claude.replay([claude._old_result(0.0024, 100, 12)], state)
    totals = rollup(items, "claude-sonnet-4-5")
    assert totals["reported_cost_usd"] == pytest.approx(0.0024)  # the last cumulative total
    assert tokens(totals) == (300, 36, 0, 0)


def test_acp_per_turn_usage_is_summed_as_reported() -> None:
    lines = [json.loads(x) for x in (DATA / "acp_gemini.jsonl").read_text().splitlines()]
    counts = [
        x["result"]["_meta"]["quota"]["token_count"]
        for x in lines
        if "result" in x and "_meta" in (x["result"] or {})
    ]
    items, _ = acp.replay("gemini", [True])
    totals = rollup(items, "gemini-2.5-pro")
    assert tokens(totals)[:2] == (
        sum(c["input_tokens"] for c in counts),
        sum(c["output_tokens"] for c in counts),
    )
    assert totals["computed_cost_usd"] > 0 and totals["unpriced_events"] == 0


def test_a_planted_cost_discrepancy_is_flagged() -> None:
    raw = [json.loads(x) for x in claude.RECORDED.read_text().splitlines()]
    for line in raw:
        if line.get("type") == "result":  # the CLI claims ten times the list price
            line["total_cost_usd"] *= 10
            for key in ("modelUsage", "model_usage_since_last_result"):
                for per_model in (line.get(key) or {}).values():
                    per_model["costUSD"] *= 10
    totals = rollup(claude.replay(raw), "claude-sonnet-4-5")
    assert totals["reported_cost_usd"] == pytest.approx(10 * totals["computed_cost_usd"])
    assert flag_cost(
        totals["computed_cost_usd"], totals["reported_cost_usd"], int(totals["reported_events"])
    )
