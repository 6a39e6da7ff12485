"""Settling live usage against an agent's own total (``executor.sink.usage_remainder``).

Claude Code reports each model call's usage as it streams (partly: the output count of a
message's start) and the exact figures only in its result; the run's total must end at the
result's figures with nothing counted twice.
"""

from __future__ import annotations

import pytest

from codeyard.domain.events import Usage
from codeyard.executor.sink import add_usage, usage_remainder
from codeyard.pricing import price_usage

MODEL = "claude-sonnet-4-5"


def recorded(*events: Usage) -> dict[str, float]:
    """What the sink's exact running sum holds after these (priced) live events."""
    total: dict[str, float] = add_usage({}, {})
    for event in events:
        total = add_usage(total, price_usage(event.data, MODEL), digits=None)
    return total


def test_the_result_adds_only_what_the_live_counts_missed() -> None:
    live = [
        Usage(input_tokens=100, output_tokens=1, cache_read_tokens=5, cost_source="estimate"),
        Usage(output_tokens=39, cost_source="estimate"),
    ]
    seen = recorded(*live)
    assert seen["cost_usd"] > 0  # priced from the map while the turn ran
    total = Usage(
        input_tokens=200, output_tokens=52, cache_read_tokens=5, cost_usd=0.0015, model=MODEL
    )
    rest = usage_remainder(total, seen)
    assert rest is not None
    assert (rest.input_tokens, rest.output_tokens, rest.cache_read_tokens) == (100, 12, 0)
    # Live estimate + remainder = the CLI's own cost, to the digit.
    assert rest.cost_usd is not None
    assert seen["cost_usd"] + rest.cost_usd == pytest.approx(0.0015, abs=1e-8)
    assert rest.model == MODEL


def test_nothing_is_recorded_when_the_live_counts_hold_everything() -> None:
    live = Usage(input_tokens=100, output_tokens=40, cost_source="estimate")
    seen = recorded(live)
    total = Usage(input_tokens=100, output_tokens=40, cost_usd=seen["cost_usd"])
    assert usage_remainder(total, seen) is None
    assert usage_remainder(Usage(), add_usage({}, {})) is None


def test_an_unreported_cost_leaves_the_remaining_tokens_to_the_price_map() -> None:
    seen = recorded(Usage(input_tokens=100, output_tokens=1, cost_source="estimate"))
    rest = usage_remainder(Usage(input_tokens=100, output_tokens=30), seen)
    assert rest is not None and rest.cost_usd is None
    assert (rest.input_tokens, rest.output_tokens) == (0, 29)
    assert price_usage(rest.data, MODEL)["cost_source"] == "price_map"


def test_a_live_count_the_total_does_not_confirm_is_taken_back() -> None:
    seen = recorded(Usage(input_tokens=120, output_tokens=10, cost_source="estimate"))
    rest = usage_remainder(Usage(input_tokens=100, output_tokens=10, cost_usd=0.00045), seen)
    assert rest is not None and rest.input_tokens == -20
    assert seen["cost_usd"] + (rest.cost_usd or 0.0) == pytest.approx(0.00045, abs=1e-8)


def test_an_estimate_is_priced_from_the_map_and_stays_an_estimate() -> None:
    priced = price_usage(Usage(input_tokens=1000, cost_source="estimate").data, MODEL)
    assert priced["cost_source"] == "estimate" and priced["cost_usd"] == pytest.approx(0.003)
    unknown = price_usage(Usage(input_tokens=1000, cost_source="estimate").data, "no-such-model")
    assert unknown["cost_source"] is None and unknown["cost_usd"] is None
