"""The vendored LiteLLM price map, its aliases, and the cost of a usage event."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from codeyard import pricing


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("claude-sonnet-4-5", "claude-sonnet-4-5"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5-20250929"),  # its own entry
        ("claude-haiku-5-5-20990101", "claude-haiku-5-5"),  # unknown date → undated
        ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5"),  # Vertex spelling
        ("claude-sonnet-4.5", "claude-sonnet-4-5"),
        ("Claude-Opus-4-8[1m]", "claude-opus-4-8"),  # what Claude Code's init reports
        ("anthropic/claude-opus-4-5", "claude-opus-4-5"),
        ("sonnet", "claude-sonnet-5-5"),
        ("opus", "claude-opus-5-5"),
        ("haiku", "claude-haiku-5-5"),
        ("gpt-5-codex", "gpt-5-codex"),
        ("openai/gpt-5-codex", "gpt-5-codex"),
        ("gpt-5-2025-08-07", "gpt-5-2025-08-07"),
        ("gpt-5.1-codex-2099-01-01", "gpt-5.1-codex"),
        ("o4-mini", "o4-mini"),
        ("gemini-2.5-pro", "gemini-2.5-pro"),
        ("gemini/gemini-2.5-pro", "gemini-2.5-pro"),
        ("models/gemini-2.5-flash", "gemini-2.5-flash"),
        ("google/gemini-2.5-pro", "gemini-2.5-pro"),
        ("gemini-2.5-pro-preview-06-05", "gemini-2.5-pro"),
        ("gemini-2.5-flash-001", "gemini-2.5-flash"),
        ("gemini-3.1-pro-preview", "gemini-3.1-pro-preview"),  # a preview with its own entry
    ],
)
def test_resolve(name: str, expected: str) -> None:
    assert pricing.resolve(name) == expected


@pytest.mark.parametrize("name", ["", "fake-model", "llama-3-70b", "gpt-3.5-turbo-instruct"])
def test_unknown_models_have_no_price(name: str) -> None:
    assert pricing.price_for(name) is None
    assert pricing.cost_usd(name, {"input_tokens": 10}) is None


def test_cost_matches_what_claude_code_reports() -> None:
    # agent-clis.md §3.8: 100 in / 12 out on claude-sonnet-4-5 was reported as $0.00048.
    assert pricing.cost_usd("claude-sonnet-4-5", {"input_tokens": 100, "output_tokens": 12}) == (
        pytest.approx(0.00048)
    )
    assert pricing.cost_usd("claude-opus-4-8", {"input_tokens": 100, "output_tokens": 12}) == (
        pytest.approx(0.0008)
    )


def test_cache_tokens_use_their_own_prices() -> None:
    usage = {
        "input_tokens": 1_000,
        "output_tokens": 2_000,
        "cache_read_tokens": 10_000,
        "cache_write_tokens": 4_000,
    }
    # claude-sonnet-4-5: 3e-6 in, 1.5e-5 out, 3e-7 cache read, 3.75e-6 cache write.
    expected = 1_000 * 3e-6 + 2_000 * 1.5e-5 + 10_000 * 3e-7 + 4_000 * 3.75e-6
    assert pricing.cost_usd("claude-sonnet-4-5", usage) == pytest.approx(expected)


def test_cache_writes_without_a_price_cost_as_input() -> None:
    price = pricing.price_for("gpt-5-codex")
    assert price is not None and price.cache_creation_input_token_cost is None
    cost = pricing.cost_usd(
        "gpt-5-codex", {"cache_write_tokens": 1_000, "cache_read_tokens": 1_000}
    )
    assert cost == pytest.approx(1_000 * 1.25e-6 + 1_000 * 1.25e-7)


def test_the_snapshot_keeps_only_the_agents_vendors_and_their_prices() -> None:
    raw = json.loads(
        resources.files("codeyard.pricing").joinpath("litellm_prices.json").read_text()
    )
    vendors = {"anthropic", "openai", "gemini", "dashscope"}
    assert {e["litellm_provider"] for e in raw.values()} == vendors
    for key, entry in raw.items():
        assert entry["input_cost_per_token"] > 0, key
        assert entry["output_cost_per_token"] >= entry["input_cost_per_token"], key
    every = pricing.models()
    assert len(every) == len(raw)
    assert {m.provider for m in pricing.models("gemini")} == {"gemini"}
    # Qwen Code's models: DashScope's, priced at their first tier when priced in tiers only.
    qwen = pricing.price_for("dashscope/qwen3-coder-plus")
    assert qwen is not None and qwen.id == "qwen3-coder-plus" and qwen.provider == "dashscope"
    assert (qwen.input_cost_per_token, qwen.output_cost_per_token) == (1e-06, 5e-06)
    assert [m.id for m in every] == sorted(m.id for m in every)


def test_aliases_point_at_models_and_are_listed_on_them() -> None:
    opus = pricing.price_for("opus")
    assert opus is not None and "opus" in opus.aliases
    gemini = pricing.price_for("gemini-2.5-pro")
    assert gemini is not None and gemini.aliases == ("gemini/gemini-2.5-pro",)
    aliases = json.loads(resources.files("codeyard.pricing").joinpath("aliases.json").read_text())[
        "aliases"
    ]
    for alias, target in aliases.items():
        assert pricing.resolve(target) == target, alias


def test_price_usage_keeps_a_reported_cost() -> None:
    data = {"input_tokens": 100, "output_tokens": 12, "cost_usd": 0.5}
    assert pricing.price_usage(data, "claude-sonnet-4-5") == {
        **data,
        "cost_source": "reported",
    }
    # A reported zero is still reported, not recomputed.
    zero = pricing.price_usage({**data, "cost_usd": 0.0}, "claude-sonnet-4-5")
    assert zero["cost_usd"] == 0.0 and zero["cost_source"] == "reported"


def test_price_usage_fills_a_missing_cost_from_the_map() -> None:
    data = {"input_tokens": 100, "output_tokens": 12, "cost_usd": None}
    out = pricing.price_usage(data, "claude-sonnet-4-5")
    assert out["cost_usd"] == pytest.approx(0.00048) and out["cost_source"] == "price_map"
    # The event's own model wins over the run's.
    own = pricing.price_usage({**data, "model": "claude-opus-4-8"}, "claude-sonnet-4-5")
    assert own["cost_usd"] == pytest.approx(0.0008)
    assert data["cost_usd"] is None  # not mutated


def test_price_usage_leaves_unpriced_models_null() -> None:
    out = pricing.price_usage({"input_tokens": 5}, "fake-model")
    assert out["cost_usd"] is None and out["cost_source"] is None
    assert pricing.price_usage({"input_tokens": 5}, None)["cost_source"] is None
