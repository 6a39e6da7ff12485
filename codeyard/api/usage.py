"""Spend across runs: today or this month, per model and per project."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter

from codeyard.api.auth import require_scope
from codeyard.api.deps import Svc
from codeyard.api.meta_views import UsageTotalsView
from codeyard.store import settings as settings_store
from codeyard.store import usage

router = APIRouter(tags=["usage"])


@router.get("/usage", dependencies=[require_scope("runs:read")], response_model=UsageTotalsView)
async def usage_totals(svc: Svc, period: Literal["day", "month"] = "day") -> dict[str, Any]:
    """Recorded tokens and dollars since the start of the UTC day or month, with the cap."""
    now = datetime.now(UTC)
    since = now.strftime("%Y-%m-%dT00:00:00.000Z" if period == "day" else "%Y-%m-01T00:00:00.000Z")
    async with svc.engine.connect() as conn:
        totals = await usage.breakdown(conn, since)
        caps = (await settings_store.load(conn)).get("budgets") or {}
    cap = caps.get("daily_usd" if period == "day" else "monthly_usd")
    return {"period": period, "since": since, "cap_usd": cap, **totals}
