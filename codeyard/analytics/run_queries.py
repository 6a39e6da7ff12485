"""Read side of analytics over the runs themselves: run counts, successes and minutes (per
group, per model), each run's usage with its cost check (paginated), and policy decisions.

Summed in SQL; only a ``repo`` filter (repo ids are a JSON list on the run) is applied row by
row.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import TIMESTAMP, Select, Text, and_, case, cast, func, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection

from codeyard.analytics.filters import Filters, in_repo, run_where
from codeyard.analytics.fold import RUN_MEASURES
from codeyard.analytics.queries import clean
from codeyard.domain.status import ACTIVE
from codeyard.store import schema
from codeyard.store.pages import decode_cursor, encode_cursor

RU, R, PD = schema.run_usage, schema.runs, schema.policy_decisions
#: Computed and reported cost of a run differ by more than this share (and a cent): flagged.
COST_TOLERANCE = 0.05

FINISHED = ("review", "completed", "failed", "cancelled")
SUCCEEDED = ("review", "completed")


def _count_if(cond: Any) -> Any:
    return func.sum(case((cond, 1), else_=0))


def _minutes_or_zero(conn: AsyncConnection) -> Any:
    """Run minutes: ``run_seconds`` (kept with ``finished_at``); the dates are parsed only for a
    row written without it (parsing them for every run cost PostgreSQL ~10 ms per 10,000)."""
    started = and_(R.c.started_at.is_not(None), R.c.finished_at.is_not(None))
    return case(
        (R.c.run_seconds.is_not(None), R.c.run_seconds / 60.0),
        (started, _minutes_sql(conn)),
        else_=0.0,
    )


def _minutes_sql(conn: AsyncConnection) -> Any:
    """Run minutes (finished minus started) in the database's own date arithmetic."""
    if conn.dialect.name == "postgresql":
        seconds = func.extract(
            "epoch",
            func.cast(R.c.finished_at, TIMESTAMP) - func.cast(R.c.started_at, TIMESTAMP),
        )
        return seconds / 60.0
    return (func.julianday(R.c.finished_at) - func.julianday(R.c.started_at)) * 1440.0


async def run_stats(
    conn: AsyncConnection, flt: Filters, group: Any | None = None
) -> dict[str, dict[str, Any]]:
    """Runs, active runs, successes, resolutions, turns and minutes (per ``group`` column).

    Summed in SQL; only a ``repo`` filter (repo ids are a JSON list on the run) is applied
    row by row."""
    if flt.repo is not None:
        return await _run_stats_rows(conn, flt, group)
    key_col = (group if group is not None else literal("")).label("key")
    stmt = select(
        key_col,
        func.count().label("runs"),
        _count_if(R.c.status.in_([str(x) for x in ACTIVE])).label("active_runs"),
        _count_if(R.c.status.in_(FINISHED)).label("finished_runs"),
        _count_if(R.c.status.in_(SUCCEEDED)).label("succeeded"),
        _count_if(and_(R.c.resolution.is_not(None), R.c.resolution != "discard")).label("resolved"),
        func.coalesce(func.sum(R.c.turns), 0).label("turns"),
        func.coalesce(func.sum(_minutes_or_zero(conn)), 0.0).label("minutes"),
    ).where(*run_where(flt))
    if group is not None:
        stmt = stmt.group_by(group)
    out: dict[str, dict[str, Any]] = {}
    for row in (await conn.execute(stmt)).all():
        values = dict(row._mapping)
        key = str(values.pop("key") or "")
        if not values["runs"]:
            continue
        out[key] = {
            k: (float(v or 0) if k == "minutes" else int(v or 0)) for k, v in values.items()
        }
    return out


async def _run_stats_rows(
    conn: AsyncConnection, flt: Filters, group: Any | None = None
) -> dict[str, dict[str, Any]]:
    cols = [
        R.c.status,
        R.c.resolution,
        R.c.turns,
        R.c.repo_ids,
        R.c.started_at,
        R.c.finished_at,
    ]
    key_col = group if group is not None else R.c.project_id
    stmt = select(key_col.label("key"), *cols).where(*run_where(flt))
    active = {str(s) for s in ACTIVE}
    out: dict[str, dict[str, Any]] = {}
    for row in (await conn.execute(stmt)).all():
        if not in_repo(row, flt.repo):
            continue
        key = "" if group is None else str(row.key or "")
        agg = out.setdefault(
            key,
            {
                "runs": 0,
                "active_runs": 0,
                "finished_runs": 0,
                "succeeded": 0,
                "resolved": 0,
                "turns": 0,
                "minutes": 0.0,
            },
        )
        agg["runs"] += 1
        agg["turns"] += int(row.turns or 0)
        if row.status in active:
            agg["active_runs"] += 1
        if row.status in FINISHED:
            agg["finished_runs"] += 1
            agg["succeeded"] += int(row.status in SUCCEEDED)
        agg["resolved"] += int(row.resolution is not None and row.resolution != "discard")
        if row.started_at and row.finished_at:
            agg["minutes"] += _minutes(row.started_at, row.finished_at)
    return out


def _minutes(start: str, end: str) -> float:
    fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
    try:
        return (datetime.strptime(end, fmt) - datetime.strptime(start, fmt)).total_seconds() / 60
    except ValueError:
        return 0.0


def flag_cost(computed: float, reported: float, reported_events: int) -> bool:
    """Whether the CLI's own cost and Codeyard's differ beyond the tolerance."""
    if reported_events == 0:
        return False
    gap = abs(computed - reported)
    return gap > 0.01 and gap > COST_TOLERANCE * max(computed, reported)


SORTS = ("newest", "cost", "tokens")


def _per_run() -> Any:
    """``run_usage`` summed over each run's models."""
    return (
        select(RU.c.run_id, *[func.sum(RU.c[m]).label(m) for m in RUN_MEASURES])
        .group_by(RU.c.run_id)
        .subquery("ru")
    )


async def model_run_stats(conn: AsyncConnection, flt: Filters) -> dict[str, dict[str, Any]]:
    """Per model: the runs that used it, and their turns and minutes (summed in SQL unless a
    repo filter needs each run's repo list)."""
    if flt.repo is None:
        stmt = (
            select(
                RU.c.model,
                func.count().label("runs"),
                func.coalesce(func.sum(R.c.turns), 0).label("turns"),
                func.coalesce(func.sum(_minutes_or_zero(conn)), 0.0).label("minutes"),
            )
            .select_from(RU.join(R, R.c.id == RU.c.run_id))
            .where(*run_where(flt))
            .group_by(RU.c.model)
        )
        return {
            str(r.model or ""): {
                "runs": int(r.runs),
                "turns": int(r.turns or 0),
                "minutes": float(r.minutes or 0),
            }
            for r in (await conn.execute(stmt)).all()
        }
    stmt = (
        select(RU.c.model, R.c.repo_ids, R.c.turns, R.c.started_at, R.c.finished_at)
        .select_from(RU.join(R, R.c.id == RU.c.run_id))
        .where(*run_where(flt))
    )
    out: dict[str, dict[str, Any]] = {}
    for row in (await conn.execute(stmt)).all():
        if not in_repo(row, flt.repo):
            continue
        agg = out.setdefault(row.model or "", {"runs": 0, "turns": 0, "minutes": 0.0})
        agg["runs"] += 1
        agg["turns"] += int(row.turns or 0)
        if row.started_at and row.finished_at:
            agg["minutes"] += _minutes(row.started_at, row.finished_at)
    return out


async def run_telemetry(
    conn: AsyncConnection,
    flt: Filters,
    status: str | None,
    sort: str,
    limit: int,
    cursor: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Runs with their usage and cost check, paginated by an offset cursor (any sort order)."""
    offset = int(decode_cursor(cursor) or 0)
    conds = run_where(flt)
    if status is not None:
        conds.append(R.c.status == status)
    ru = _per_run()
    order = {
        "newest": (R.c.created_at.desc(), R.c.id.desc()),
        "cost": (func.coalesce(ru.c.cost_usd, 0).desc(), R.c.id.desc()),
        "tokens": (
            func.coalesce(ru.c.input_tokens + ru.c.output_tokens, 0).desc(),
            R.c.id.desc(),
        ),
    }[sort]
    stmt: Select[Any] = (
        select(
            R.c.id,
            R.c.number,
            R.c.title,
            R.c.status,
            R.c.provider,
            R.c.model,
            R.c.repo_ids,
            R.c.project_id,
            R.c.turns,
            R.c.created_at,
            R.c.started_at,
            R.c.finished_at,
            *[ru.c[m] for m in RUN_MEASURES],
        )
        .select_from(R.outerjoin(ru, ru.c.run_id == R.c.id))
        .where(*conds)
        .order_by(*order)
    )
    rows = []
    scanned = 0
    result = await conn.stream(stmt.offset(offset))
    async for row in result:
        scanned += 1
        if not in_repo(row, flt.repo):
            continue
        rows.append(row)
        if len(rows) > limit:
            break
    await result.close()
    more = len(rows) > limit
    rows = rows[:limit]
    out = []
    for row in rows:
        m = {k: (row._mapping[k] or 0) for k in RUN_MEASURES}
        usage = clean(m)
        out.append(
            {
                "id": row.id,
                "number": row.number,
                "title": row.title,
                "status": row.status,
                "provider": row.provider,
                "model": row.model,
                "project_id": row.project_id,
                "repo_ids": list(row.repo_ids or []),
                "turns": int(row.turns or 0),
                "created_at": row.created_at,
                "duration_minutes": round(_minutes(row.started_at, row.finished_at), 3)
                if row.started_at and row.finished_at
                else None,
                **usage,
                "cost_mismatch": flag_cost(
                    usage["computed_cost_usd"],
                    usage["reported_cost_usd"],
                    usage["reported_events"],
                ),
            }
        )
    next_cursor = encode_cursor(offset + scanned - (1 if more else 0)) if more else None
    return out, next_cursor


async def policy_decisions(conn: AsyncConnection, flt: Filters) -> list[dict[str, Any]]:
    conds = run_where(flt, by_created=False)
    if flt.since_ts is not None:
        conds.append(PD.c.created_at >= flt.since_ts)
    # PostgreSQL cannot group by a JSON value: group by its text and read it back.
    repos_text = cast(R.c.repo_ids, Text)
    stmt = (
        select(
            PD.c.rule, PD.c.tool, PD.c.decision, repos_text.label("repos"), func.count().label("n")
        )
        .select_from(PD.join(R, R.c.id == PD.c.run_id))
        .where(*conds)
        .group_by(PD.c.rule, PD.c.tool, PD.c.decision, repos_text)
    )
    agg: dict[tuple[str, str], dict[str, Any]] = {}
    for row in (await conn.execute(stmt)).all():
        if flt.repo is not None and flt.repo not in json.loads(row.repos or "[]"):
            continue
        cell = agg.setdefault(
            (row.rule or "", row.tool),
            {"rule": row.rule or "", "tool": row.tool, "allow": 0, "ask": 0, "deny": 0},
        )
        if row.decision in ("allow", "ask", "deny"):
            cell[row.decision] += int(row.n)
    return sorted(agg.values(), key=lambda c: -(c["allow"] + c["ask"] + c["deny"]))
