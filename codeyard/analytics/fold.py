"""Events → additive rollup increments. Pure: no I/O, so replays and tests are cheap.

Each ``usage`` event already carries a *delta* (the adapters turn each CLI's cumulative or
per-turn counters into deltas, see ``codeyard.agents.*.normalize``), in Codeyard's four disjoint
token counts. Here every event is priced again from the price map (``computed``) next to the
cost on the event, and the cost the CLI itself reported is kept apart (``reported``), so the
two can be compared per run and a gap flagged.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from codeyard.pricing import price_for

TOKENS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
COSTS = ("cost_usd", "computed_cost_usd", "reported_cost_usd")
USAGE_COUNTS = ("usage_events", "unpriced_events", "reported_events")
USAGE_MEASURES = (*TOKENS, *COSTS, *USAGE_COUNTS, "user_messages", "agent_messages")
RUN_MEASURES = (*TOKENS, *COSTS, *USAGE_COUNTS, "tool_calls", "tool_failures", "messages")
DIMS = ("project_id", "repo_id", "provider", "model", "agent_id", "user_id")
#: Upper bounds (ms) of the tool-duration buckets; percentiles are read to this resolution.
DURATION_BUCKETS = (
    10,
    25,
    50,
    100,
    250,
    500,
    1_000,
    2_500,
    5_000,
    10_000,
    30_000,
    60_000,
    180_000,
    600_000,
    2**62,
)
TYPES = frozenset(
    {"usage", "tool.call", "tool.result", "agent.message", "user.message", "agent.session"}
)

Dims = tuple[str, str, str, str, str, str]


@dataclass(frozen=True, slots=True)
class RunDims:
    project_id: str
    repo_id: str
    provider: str
    model: str
    agent_id: str
    user_id: str

    def with_model(self, model: str | None) -> Dims:
        return (
            self.project_id,
            self.repo_id,
            self.provider,
            model or self.model,
            self.agent_id,
            self.user_id,
        )


@dataclass
class Increments:
    usage: dict[tuple[str, Dims], dict[str, float]] = field(default_factory=dict)
    tools: dict[tuple[str, Dims, str, int], list[int]] = field(default_factory=dict)
    #: Per run and model (a run may switch models): what ``run_usage`` adds up.
    runs: dict[tuple[str, str], dict[str, float]] = field(default_factory=dict)

    def _usage(self, hour: str, dims: Dims) -> dict[str, float]:
        return self.usage.setdefault((hour, dims), dict.fromkeys(USAGE_MEASURES, 0))

    def _run(self, run_id: str, model: str) -> dict[str, float]:
        return self.runs.setdefault((run_id, model), dict.fromkeys(RUN_MEASURES, 0))

    def run_totals(self, run_id: str) -> dict[str, float]:
        """One run's measures over all its models."""
        out = dict.fromkeys(RUN_MEASURES, 0.0)
        for (rid, _model), values in self.runs.items():
            if rid == run_id:
                for key, value in values.items():
                    out[key] += value
        return out


def hour_of(ts: str) -> str:
    """``2026-12-03T09:41:02.123Z`` → ``2026-12-03T09`` (stored timestamps are UTC)."""
    return ts[:13]


def bucket_of(duration_ms: float) -> int:
    for bound in DURATION_BUCKETS:
        if duration_ms <= bound:
            return bound
    return DURATION_BUCKETS[-1]


#: Name resolution tries several spellings with regexes; a log has a handful of model names.
_price = lru_cache(maxsize=512)(price_for)


def price_event(data: Mapping[str, Any], model: str | None) -> dict[str, float]:
    """One usage event's tokens and its three costs (effective, computed, CLI-reported)."""
    out: dict[str, float] = {k: int(data.get(k) or 0) for k in TOKENS}
    price = _price(model) if model else None
    computed = None if price is None else price.cost(data)
    cost = data.get("cost_usd")
    out["cost_usd"] = float(cost) if cost is not None else (computed or 0.0)
    out["computed_cost_usd"] = computed or 0.0
    reported = data.get("cost_source") == "reported" and cost is not None
    # A live estimate is part of the agent's own total: its settling ``reported`` event holds
    # only the difference.
    settled = reported or (data.get("cost_source") == "estimate" and cost is not None)
    out["reported_cost_usd"] = float(cost) if settled and cost is not None else 0.0
    out["usage_events"] = 1
    out["unpriced_events"] = 1 if computed is None else 0
    out["reported_events"] = 1 if reported else 0
    return out


@dataclass(frozen=True, slots=True)
class FoldInput:
    run_id: str
    type: str
    ts: str
    data: str


def fold(
    events: Iterable[FoldInput],
    dims: Mapping[str, RunDims],
    call_tools: dict[str, str],
    session_models: dict[str, str] | None = None,
) -> Increments:
    """Increments for ``events``.

    ``call_tools`` maps ``run_id/call_id`` → tool name and is updated (calls added, finished
    ones removed) so a result in a later chunk finds its call. ``session_models`` maps a run to
    the model its agent session reported (``agent.session``): usage events without a model of
    their own (Claude Code's) are priced and grouped by it, as the executor's sink does.
    """
    inc = Increments()
    models = session_models if session_models is not None else {}
    for ev in events:
        run_dims = dims.get(ev.run_id)
        if run_dims is None:  # the run was deleted before its events were rolled up
            continue
        data = json.loads(ev.data)
        hour = hour_of(ev.ts)
        current = models.get(ev.run_id) or run_dims.model
        if ev.type == "agent.session":
            if data.get("model"):
                models[ev.run_id] = str(data["model"])
        elif ev.type == "usage":
            model = data.get("model") or current or None
            priced = price_event(data, model)
            row = inc._usage(hour, run_dims.with_model(model))
            run = inc._run(ev.run_id, model or "")
            for key, value in priced.items():
                row[key] += value
                run[key] += value
        elif ev.type in ("agent.message", "user.message"):
            key = "agent_messages" if ev.type == "agent.message" else "user_messages"
            inc._usage(hour, run_dims.with_model(current))[key] += 1
            inc._run(ev.run_id, current)["messages"] += 1
        elif ev.type == "tool.call":
            call_tools[f"{ev.run_id}/{data.get('call_id')}"] = str(data.get("tool") or "?")
        elif ev.type == "tool.result":
            tool = call_tools.pop(f"{ev.run_id}/{data.get('call_id')}", "?")
            failed = data.get("ok") is False
            le = bucket_of(float(data.get("duration_ms") or 0))
            cell = inc.tools.setdefault((hour, run_dims.with_model(current), tool, le), [0, 0])
            cell[0] += 1
            cell[1] += int(failed)
            run = inc._run(ev.run_id, current)
            run["tool_calls"] += 1
            run["tool_failures"] += int(failed)
    return inc


def percentile(buckets: Mapping[int, int], q: float) -> int | None:
    """The bucket bound under which a fraction ``q`` of the calls finished (None: no calls)."""
    total = sum(buckets.values())
    if total == 0:
        return None
    need = q * total
    seen = 0
    for bound in sorted(buckets):
        seen += buckets[bound]
        if seen >= need:
            return bound
    return max(buckets)
