"""Model names → prices, and token counts → dollars. Pure apart from reading the package data.

Token counts follow Codeyard's ``usage`` event: ``input_tokens``, ``output_tokens``,
``cache_read_tokens``, ``cache_write_tokens``, four *disjoint* counts (the Anthropic convention:
``input_tokens`` excludes cached tokens). An adapter for an API that counts cached tokens inside
its input count (OpenAI's ``cached_input_tokens``) subtracts them before yielding the event.

Cache reads and writes without a price of their own in the map are charged as input tokens.
Prices are the base tier: LiteLLM's "above 200k tokens", batch and priority tiers are not kept.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

#: Prefixes callers put before a model name (LiteLLM, OpenRouter-style, Gemini API resources).
_PREFIX = re.compile(r"^(anthropic|openai|gemini|google|dashscope|models)/")
#: ``claude-opus-4-8[1m]``: Claude Code's context-window suffix.
_BRACKET = re.compile(r"\[[^\]]*\]$")
#: ``-20250929``, ``-2025-08-07``, ``@20250929`` (Vertex), ``-v1:0`` (Bedrock).
_DATE = re.compile(r"([-@]\d{8}|-\d{4}-\d{2}-\d{2})(-v\d+:\d+)?$")
#: Gemini versions: ``-preview``, ``-preview-06-05``, ``-001``, ``-latest``.
_GEMINI_SUFFIX = re.compile(r"(-preview(-\d{2}-\d{2})?|-\d{3}|-latest)$")
#: ``claude-sonnet-4.5`` → ``claude-sonnet-4-5``.
_DOTTED_CLAUDE = re.compile(r"^(claude-[a-z]+-)(\d+)\.(\d+)")


_ALL = ("anthropic", "openai", "gemini", "dashscope")
#: Codeyard providers (and the map's own provider names) → the map's providers whose models they
#: run. Copilot, OpenCode and ACP agents can be pointed at any vendor.
VENDORS: dict[str, tuple[str, ...]] = {
    "claude-code": ("anthropic",),
    "codex": ("openai",),
    "codex-acp": ("openai",),
    "claude-acp": ("anthropic",),
    "gemini": ("gemini",),
    "copilot": _ALL,
    "opencode": _ALL,
    "qwen": _ALL,  # Qwen Code speaks to any OpenAI-compatible endpoint
    "kilo": _ALL,
    "aider": _ALL,  # any model LiteLLM reaches
    "acp": _ALL,
    "script": _ALL,
    "anthropic": ("anthropic",),
    "openai": ("openai",),
}


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """One model of the map. Costs are US dollars per token."""

    id: str
    provider: str  # LiteLLM's provider: anthropic | openai | gemini | dashscope
    input_cost_per_token: float
    output_cost_per_token: float
    cache_read_input_token_cost: float | None
    cache_creation_input_token_cost: float | None
    max_input_tokens: int | None
    max_output_tokens: int | None
    aliases: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "provider": self.provider,
            "input_cost_per_token": self.input_cost_per_token,
            "output_cost_per_token": self.output_cost_per_token,
            "cache_read_input_token_cost": self.cache_read_input_token_cost,
            "cache_creation_input_token_cost": self.cache_creation_input_token_cost,
            "max_input_tokens": self.max_input_tokens,
            "max_output_tokens": self.max_output_tokens,
            "aliases": list(self.aliases),
        }

    def cost(self, usage: Mapping[str, Any]) -> float:
        def count(key: str) -> int:
            return int(usage.get(key) or 0)

        read = self.cache_read_input_token_cost
        write = self.cache_creation_input_token_cost
        total = (
            count("input_tokens") * self.input_cost_per_token
            + count("output_tokens") * self.output_cost_per_token
            + count("cache_read_tokens") * (self.input_cost_per_token if read is None else read)
            + count("cache_write_tokens") * (self.input_cost_per_token if write is None else write)
        )
        return round(total, 8)


def _read(name: str) -> Any:
    return json.loads(resources.files("codeyard.pricing").joinpath(name).read_text("utf-8"))


@cache
def _table() -> tuple[dict[str, ModelPrice], dict[str, str]]:
    """Models by id, and every other accepted exact name → id."""
    aliases: dict[str, str] = _read("aliases.json")["aliases"]
    raw: dict[str, dict[str, Any]] = _read("litellm_prices.json")
    by_id: dict[str, ModelPrice] = {}
    names: dict[str, str] = {}
    for key, entry in raw.items():
        model_id = _PREFIX.sub("", key)
        own = sorted({key} - {model_id} | {a for a, target in aliases.items() if target == key})
        by_id[model_id] = ModelPrice(
            id=model_id,
            provider=str(entry["litellm_provider"]),
            input_cost_per_token=float(entry["input_cost_per_token"]),
            output_cost_per_token=float(entry["output_cost_per_token"]),
            cache_read_input_token_cost=_opt_float(entry.get("cache_read_input_token_cost")),
            cache_creation_input_token_cost=_opt_float(
                entry.get("cache_creation_input_token_cost")
            ),
            max_input_tokens=_opt_int(entry.get("max_input_tokens")),
            max_output_tokens=_opt_int(entry.get("max_output_tokens")),
            aliases=tuple(own),
        )
        for name in own:
            names[name] = model_id
    return by_id, names


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _candidates(name: str) -> list[str]:
    """The name, then ever more general spellings of it, most specific first."""
    name = _BRACKET.sub("", name.strip().lower())
    while _PREFIX.match(name):
        name = _PREFIX.sub("", name)
    name = _DOTTED_CLAUDE.sub(r"\1\2-\3", name)
    out = [name]
    undated = _DATE.sub("", name)
    if undated != name:
        out.append(undated)
    if undated.startswith("gemini-"):
        stripped = undated
        while _GEMINI_SUFFIX.search(stripped):
            stripped = _GEMINI_SUFFIX.sub("", stripped)
            out.append(stripped)
    elif undated.endswith("-latest"):
        out.append(undated.removesuffix("-latest"))
    return out


def resolve(model: str) -> str | None:
    """The map's id for a model name as a CLI or an operator spells it, or ``None``."""
    by_id, names = _table()
    for candidate in _candidates(model):
        if candidate in by_id:
            return candidate
        if candidate in names:
            return names[candidate]
    return None


def price_for(model: str | None) -> ModelPrice | None:
    if not model:
        return None
    model_id = resolve(model)
    return None if model_id is None else _table()[0][model_id]


def cost_usd(model: str | None, usage: Mapping[str, Any]) -> float | None:
    """Dollars for ``usage`` (a ``usage`` event's counts) on ``model``; ``None`` if unpriced."""
    price = price_for(model)
    return None if price is None else price.cost(usage)


def models(provider: str | None = None) -> list[ModelPrice]:
    """Every priced model, or those a provider (see :data:`VENDORS`) runs, sorted by id.

    Raises ``KeyError`` for a provider name that is not in :data:`VENDORS`.
    """
    by_id = _table()[0]
    vendors = _ALL if provider is None else VENDORS[provider]
    return [by_id[k] for k in sorted(by_id) if by_id[k].provider in vendors]


def price_usage(data: Mapping[str, Any], model: str | None) -> dict[str, Any]:
    """A ``usage`` event's data with ``cost_usd`` and ``cost_source`` filled.

    A cost the agent reported is kept (``"reported"``); a missing one is computed from the price
    map (``"price_map"``) for the event's own ``model`` or else ``model``; when neither is priced
    the cost stays ``null`` with ``cost_source: null``. An ``estimate`` (a live count the agent
    settles at the turn's end) is priced from the map and stays an ``estimate``.
    """
    out = dict(data)
    if out.get("cost_usd") is not None:
        out["cost_source"] = out.get("cost_source") or "reported"
        return out
    computed = cost_usd(out.get("model") or model, out)
    out["cost_usd"] = computed
    kind = "estimate" if out.get("cost_source") == "estimate" else "price_map"
    out["cost_source"] = None if computed is None else kind
    return out
