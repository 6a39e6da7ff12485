"""Sums of recorded usage, from the ``usage`` events (the log is the truth)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from codeyard.store import schema

E, R = schema.events, schema.runs
TOKEN_KEYS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


def _empty() -> dict[str, Any]:
    return {**{k: 0 for k in TOKEN_KEYS}, "cost_usd": 0.0}


def _add(total: dict[str, Any], data: dict[str, Any]) -> None:
    for key in TOKEN_KEYS:
        total[key] += int(data.get(key) or 0)
    total["cost_usd"] = round(total["cost_usd"] + float(data.get("cost_usd") or 0.0), 6)


async def cost_since(conn: AsyncConnection, since: str) -> float:
    """Dollars recorded by every run since ``since`` (an ISO timestamp)."""
    rows = await conn.execute(select(E.c.data).where(E.c.type == "usage", E.c.ts >= since))
    return round(sum(float(json.loads(r[0]).get("cost_usd") or 0.0) for r in rows), 6)


async def breakdown(conn: AsyncConnection, since: str) -> dict[str, Any]:
    """Totals since ``since``, overall and per model and per project."""
    stmt = (
        select(E.c.data, R.c.model, R.c.provider, R.c.project_id)
        .join(R, R.c.id == E.c.run_id)
        .where(E.c.type == "usage", E.c.ts >= since)
    )
    total = _empty()
    by_model: dict[str, dict[str, Any]] = {}
    by_project: dict[str, dict[str, Any]] = {}
    for data_json, model, provider, project_id in (await conn.execute(stmt)).all():
        data = json.loads(data_json)
        _add(total, data)
        _add(by_model.setdefault(data.get("model") or model or provider, _empty()), data)
        _add(by_project.setdefault(project_id, _empty()), data)
    return {"total": total, "models": by_model, "projects": by_project}
