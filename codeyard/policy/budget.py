"""Spend caps that actually stop an agent: per run, per day, per month.

Checked before every tool call. When a cap is crossed the call waits on an approval of kind
``budget`` (the run shows ``waiting`` / ``budget``); approving raises the cap, rejecting
interrupts the turn.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from codeyard.store import settings as settings_store
from codeyard.store import usage


@dataclass(frozen=True, slots=True)
class Overrun:
    cap: str  # "run" | "daily" | "monthly"
    limit: float
    spent: float
    period: str | None = None

    @property
    def title(self) -> str:
        which = {
            "run": "This run's budget",
            "daily": "Today's budget",
            "monthly": "This month's budget",
        }[self.cap]
        return f"{which} of ${self.limit:.2f} is used up (${self.spent:.2f} spent). Continue?"


def _periods(now: datetime) -> dict[str, tuple[str, str]]:
    day = now.strftime("%Y-%m-%d")
    month = now.strftime("%Y-%m")
    return {"daily": (day, f"{day}T00:00:00.000Z"), "monthly": (month, f"{month}-01T00:00:00.000Z")}


async def check(
    conn: AsyncConnection, run: dict[str, Any], now: datetime | None = None
) -> Overrun | None:
    """The first cap this run has crossed, or None."""
    spent = float((run.get("usage") or {}).get("cost_usd") or 0.0)
    if run.get("budget_usd") is not None and spent >= float(run["budget_usd"]):
        return Overrun("run", float(run["budget_usd"]), spent)
    caps = (await settings_store.load(conn)).get("budgets") or {}
    waivers = run.get("cap_waivers") or {}
    for cap, (period, since) in _periods(now or datetime.now(UTC)).items():
        limit = caps.get(f"{cap}_usd")
        if limit is None or waivers.get(cap) == period:
            continue
        total = await usage.cost_since(conn, since)
        if total >= float(limit):
            return Overrun(cap, float(limit), total, period)
    return None


def raised(run: dict[str, Any], overrun: Overrun) -> dict[str, Any]:
    """Run columns that let it continue: another allowance of the same size, or a waiver."""
    if overrun.cap == "run":
        return {"budget_usd": round(overrun.spent + overrun.limit, 6)}
    waivers = dict(run.get("cap_waivers") or {})
    waivers[overrun.cap] = overrun.period
    return {"cap_waivers": waivers}
