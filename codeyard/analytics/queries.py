"""Read side of analytics over the hourly rollups: usage sums (in total, per dimension, per
local day) and tool call statistics.

Rollup hours are UTC; a period in the viewer's time zone is turned into a UTC hour range
(``analytics.filters``), and daily series are bucketed by the viewer's local day. Run-level
reads (run counts and minutes, run telemetry, policy decisions) are ``analytics.run_queries``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from codeyard.analytics.filters import Filters, usage_where
from codeyard.analytics.fold import USAGE_MEASURES, percentile
from codeyard.store import schema

U, T = schema.usage_hourly, schema.tool_hourly


def _sums(table: Any, measures: Sequence[str]) -> list[Any]:
    return [func.coalesce(func.sum(table.c[m]), 0).label(m) for m in measures]


def clean(values: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in values.items():
        out[key] = round(float(value), 6) if "cost" in key else int(value or 0)
    return out


async def usage_totals(conn: AsyncConnection, flt: Filters) -> dict[str, Any]:
    stmt = select(*_sums(U, USAGE_MEASURES)).where(*usage_where(flt, U))
    return clean(dict((await conn.execute(stmt)).one()._mapping))


async def usage_by(conn: AsyncConnection, flt: Filters, dim: str) -> dict[str, dict[str, Any]]:
    """Sums per value of one dimension (``model``, ``repo_id``, ``provider``, ``project_id``)."""
    stmt = (
        select(U.c[dim].label("key"), *_sums(U, USAGE_MEASURES))
        .where(*usage_where(flt, U))
        .group_by(U.c[dim])
    )
    out = {}
    for row in (await conn.execute(stmt)).all():
        values = dict(row._mapping)
        key = str(values.pop("key"))
        out[key] = clean(values)
    return out


def local_day(hour: str, zone: ZoneInfo) -> str:
    utc = datetime.strptime(hour, "%Y-%m-%dT%H").replace(tzinfo=UTC)
    return utc.astimezone(zone).strftime("%Y-%m-%d")


async def usage_daily(
    conn: AsyncConnection, flt: Filters, measures: Sequence[str]
) -> list[dict[str, Any]]:
    """Per local day (the viewer's time zone), oldest first."""
    stmt = select(U.c.hour, *_sums(U, measures)).where(*usage_where(flt, U)).group_by(U.c.hour)
    days: dict[str, dict[str, Any]] = {}
    for row in (await conn.execute(stmt)).all():
        values = dict(row._mapping)
        day = days.setdefault(local_day(values.pop("hour"), flt.tz), dict.fromkeys(measures, 0))
        for key, value in values.items():
            day[key] += value
    return [{"date": d, **clean(v)} for d, v in sorted(days.items())]


async def tool_stats(conn: AsyncConnection, flt: Filters, top: int) -> list[dict[str, Any]]:
    stmt = (
        select(T.c.tool, T.c.le_ms, func.sum(T.c.calls), func.sum(T.c.failures))
        .where(*usage_where(flt, T))
        .group_by(T.c.tool, T.c.le_ms)
    )
    by_tool: dict[str, dict[int, int]] = {}
    failures: dict[str, int] = {}
    for tool, le, calls, failed in (await conn.execute(stmt)).all():
        by_tool.setdefault(tool, {})[int(le)] = int(calls)
        failures[tool] = failures.get(tool, 0) + int(failed)
    out: list[dict[str, Any]] = []
    for tool, buckets in by_tool.items():
        count = sum(buckets.values())
        out.append(
            {
                "tool": tool,
                "count": count,
                "failures": failures[tool],
                "failure_rate": round(failures[tool] / count, 4) if count else 0.0,
                "p50_ms": percentile(buckets, 0.50),
                "p95_ms": percentile(buckets, 0.95),
                "p99_ms": percentile(buckets, 0.99),
            }
        )
    out.sort(key=lambda r: (-r["count"], r["tool"]))
    return out[:top]
