"""Regenerate ``codeyard/pricing/litellm_prices.json`` from LiteLLM's full price map.

    .venv/bin/python scripts/trim_litellm_prices.py <model_prices_and_context_window.json>

Keeps the chat models of the vendors whose CLIs Codeyard drives (Anthropic Claude, OpenAI
GPT / o-series / codex, Google Gemini via AI Studio, Alibaba Qwen via DashScope) and, of each,
only the fields pricing needs. A model priced only in tiers keeps its first (base) tier.
Update ``codeyard/pricing/LITELLM_PRICES.md`` (source, version, date) with the data.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "codeyard" / "pricing" / "litellm_prices.json"
FIELDS = (
    "litellm_provider",
    "mode",
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
    "max_input_tokens",
    "max_output_tokens",
)
OPENAI = re.compile(r"^(gpt-[45]|o[1-9]|codex)")
OPENAI_SKIP = re.compile(r"audio|realtime|search|transcribe|tts|image|chat-latest|instruct")
GEMINI_SKIP = re.compile(r"image|tts|live|embedding|exp|learnlm|gemma")


def base_tier(entry: dict[str, Any]) -> dict[str, Any]:
    """The entry with its first ``tiered_pricing`` tier as its prices, when it has no others."""
    tiers = entry.get("tiered_pricing")
    if "input_cost_per_token" in entry or not isinstance(tiers, list) or not tiers:
        return entry
    return {**tiers[0], **entry}


def keep(key: str, entry: dict[str, Any]) -> bool:
    provider, mode = entry.get("litellm_provider"), entry.get("mode")
    if "input_cost_per_token" not in entry or "output_cost_per_token" not in entry:
        return False
    if provider == "anthropic":
        return mode == "chat" and key.startswith("claude")
    if provider == "openai":
        return mode in ("chat", "responses") and bool(
            OPENAI.match(key) and not OPENAI_SKIP.search(key)
        )
    if provider == "dashscope":
        return mode == "chat" and key.startswith("dashscope/qwen")
    if provider == "gemini":
        return mode == "chat" and key.startswith("gemini/gemini-") and not GEMINI_SKIP.search(key)
    return False


def main() -> None:
    full = json.loads(Path(sys.argv[1]).read_text())
    entries = {k: base_tier(e) for k, e in sorted(full.items()) if isinstance(e, dict)}
    trimmed = {
        key: {f: entry[f] for f in FIELDS if entry.get(f) is not None}
        for key, entry in entries.items()
        if keep(key, entry)
    }
    OUT.write_text(json.dumps(trimmed, indent=1, sort_keys=True) + "\n")
    print(f"{len(trimmed)} models -> {OUT}")


if __name__ == "__main__":
    main()
