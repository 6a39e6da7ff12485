"""``/api/analytics/*``: spend, tokens, tools and runs, from the hourly rollups.

Every route takes the same filters (``range`` or ``period``, ``tz``, ``project``, ``repo``,
``provider``, ``model``, ``agent``, ``user``) and answers CSV instead of JSON when the request
says ``Accept: text/csv`` (the route's rows, one line each).
"""

from __future__ import annotations

import csv
import io
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel

from codeyard.analytics import queries as q
from codeyard.analytics import run_queries as rq
from codeyard.analytics.filters import Filters, make_filters
from codeyard.api.auth import require_scope
from codeyard.api.deps import Cursor, Limit, Svc
from codeyard.domain.errors import BadRequest
from codeyard.pricing import price_for

router = APIRouter(prefix="/analytics", tags=["analytics"])
READ = [require_scope("runs:read")]


def filters(
    range: Annotated[
        Literal["today", "7d", "30d", "all"] | None,
        Query(description="today | 7d | 30d | all (in the time zone ``tz``)."),
    ] = None,
    period: Annotated[int | None, Query(ge=0, le=3660, description="Days (0: all).")] = None,
    tz: Annotated[str, Query(description="IANA time zone for days and 'today'.")] = "UTC",
    project: str | None = None,
    repo: str | None = None,
    provider: str | None = None,
    model: str | None = None,
    agent: Annotated[str | None, Query(description="Agent profile id.")] = None,
    user: Annotated[str | None, Query(description="User id ('' for the admin token).")] = None,
) -> Filters:
    return make_filters(
        range or ("7d" if period is None else None),
        period,
        tz,
        project=project,
        repo=repo,
        provider=provider,
        model=model,
        agent=agent,
        user=user,
    )


Flt = Annotated[Filters, Depends(filters)]


def wants_csv(request: Request) -> bool:
    return "text/csv" in request.headers.get("accept", "")


def csv_response(rows: list[dict[str, Any]], name: str) -> Response:
    buf = io.StringIO()
    fields: list[str] = []
    for row in rows:
        fields.extend(k for k in row if k not in fields)
    writer = csv.DictWriter(buf, fieldnames=fields or ["empty"])
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return Response(
        buf.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


class Usage(BaseModel):
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float
    #: Priced by Codeyard from the model price map, for every usage event.
    computed_cost_usd: float
    #: What the CLIs themselves reported (only for events where they did).
    reported_cost_usd: float
    usage_events: int
    unpriced_events: int
    reported_events: int


class Overview(Usage):
    since: str | None
    runs: int
    active_runs: int
    finished_runs: int
    success_rate: float | None
    resolution_rate: float | None
    user_messages: int
    agent_messages: int
    messages: int
    cache_hit_rate: float | None


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _usage_fields(u: dict[str, Any]) -> dict[str, Any]:
    return {k: u[k] for k in Usage.model_fields}


@router.get("/overview", dependencies=READ, response_model=Overview)
async def overview(svc: Svc, flt: Flt, request: Request) -> Any:
    """Runs, active runs, tokens, messages, cache hit rate, cost, success and resolution."""
    async with svc.engine.connect() as conn:
        u = await q.usage_totals(conn, flt)
        runs = (await rq.run_stats(conn, flt)).get("", {})
    read = u["cache_read_tokens"]
    prompt = u["input_tokens"] + read + u["cache_write_tokens"]
    out = Overview(
        since=flt.since_ts,
        runs=runs.get("runs", 0),
        active_runs=runs.get("active_runs", 0),
        finished_runs=runs.get("finished_runs", 0),
        success_rate=_rate(runs.get("succeeded", 0), runs.get("finished_runs", 0)),
        resolution_rate=_rate(runs.get("resolved", 0), runs.get("finished_runs", 0)),
        user_messages=u["user_messages"],
        agent_messages=u["agent_messages"],
        messages=u["user_messages"] + u["agent_messages"],
        cache_hit_rate=_rate(read, prompt),
        **_usage_fields(u),
    )
    if wants_csv(request):
        return csv_response([out.model_dump()], "overview")
    return out


class ModelRow(Usage):
    model: str
    runs: int
    turns: int
    minutes: float
    cost_per_run: float | None
    cost_per_turn: float | None
    cost_per_minute: float | None


class ModelList(BaseModel):
    data: list[ModelRow]


def _per(cost: float, n: float) -> float | None:
    return round(cost / n, 6) if n else None


@router.get("/models", dependencies=READ, response_model=ModelList)
async def by_model(svc: Svc, flt: Flt, request: Request) -> Any:
    """Cost, tokens and runs per model, with cost per run, per turn and per minute."""
    async with svc.engine.connect() as conn:
        usage = await q.usage_by(conn, flt, "model")
        runs = await rq.model_run_stats(conn, flt)
    rows = []
    for model in sorted(set(usage) | set(runs)):
        u = usage.get(model) or dict.fromkeys(Usage.model_fields, 0)
        r = runs.get(model, {})
        cost = float(u["cost_usd"])
        rows.append(
            ModelRow(
                model=model,
                runs=r.get("runs", 0),
                turns=r.get("turns", 0),
                minutes=round(r.get("minutes", 0.0), 3),
                cost_per_run=_per(cost, r.get("runs", 0)),
                cost_per_turn=_per(cost, r.get("turns", 0)),
                cost_per_minute=_per(cost, r.get("minutes", 0.0)),
                **_usage_fields(u),
            )
        )
    rows.sort(key=lambda m: -m.cost_usd)
    if wants_csv(request):
        return csv_response([r.model_dump() for r in rows], "models")
    return ModelList(data=rows)


class ToolRow(BaseModel):
    tool: str
    count: int
    failures: int
    failure_rate: float
    #: Upper bounds of the duration buckets the percentile falls in.
    p50_ms: int | None
    p95_ms: int | None
    p99_ms: int | None


class ToolList(BaseModel):
    data: list[ToolRow]


@router.get("/tools", dependencies=READ, response_model=ToolList)
async def tools(
    svc: Svc, flt: Flt, request: Request, top: Annotated[int, Query(ge=1, le=500)] = 15
) -> Any:
    """Calls, failure rate and duration percentiles per tool, busiest first."""
    async with svc.engine.connect() as conn:
        rows = [ToolRow(**r) for r in await q.tool_stats(conn, flt, top)]
    if wants_csv(request):
        return csv_response([r.model_dump() for r in rows], "tools")
    return ToolList(data=rows)


class GroupRow(Usage):
    key: str
    runs: int


class GroupList(BaseModel):
    data: list[GroupRow]


async def _grouped(svc: Any, flt: Filters, dim: str, run_col: Any) -> list[GroupRow]:
    async with svc.engine.connect() as conn:
        usage = await q.usage_by(conn, flt, dim)
        runs = await rq.run_stats(conn, flt, group=run_col) if run_col is not None else {}
    rows = [
        GroupRow(
            key=key,
            runs=runs.get(key, {}).get("runs", 0),
            **_usage_fields(usage.get(key) or dict.fromkeys(Usage.model_fields, 0)),
        )
        for key in sorted(set(usage) | set(runs))
    ]
    rows.sort(key=lambda g: -g.cost_usd)
    return rows


@router.get("/repos", dependencies=READ, response_model=GroupList)
async def by_repo(svc: Svc, flt: Flt, request: Request) -> Any:
    """Cost and tokens per repository (a multi-repo run counts toward its first repository)."""
    rows = await _grouped(svc, flt, "repo_id", None)
    if wants_csv(request):
        return csv_response([r.model_dump() for r in rows], "repos")
    return GroupList(data=rows)


@router.get("/providers", dependencies=READ, response_model=GroupList)
async def by_provider(svc: Svc, flt: Flt, request: Request) -> Any:
    """Runs, tokens and cost per agent provider (claude-code, codex, gemini, …)."""
    rows = await _grouped(svc, flt, "provider", rq.R.c.provider)
    if wants_csv(request):
        return csv_response([r.model_dump() for r in rows], "providers")
    return GroupList(data=rows)


class RunRow(Usage):
    id: str
    number: int
    title: str
    status: str
    provider: str
    model: str | None
    project_id: str
    repo_ids: list[str]
    turns: int
    created_at: str
    duration_minutes: float | None
    tool_calls: int
    tool_failures: int
    messages: int
    #: Computed and CLI-reported cost differ by more than 5 % (and a cent).
    cost_mismatch: bool


class RunPage(BaseModel):
    data: list[RunRow]
    next_cursor: str | None


@router.get("/runs", dependencies=READ, response_model=RunPage)
async def run_telemetry(
    svc: Svc,
    flt: Flt,
    request: Request,
    status: str | None = None,
    sort: Literal["newest", "cost", "tokens"] = "newest",
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Any:
    """Per-run telemetry: tokens, computed vs reported cost (``cost_mismatch``), tools."""
    async with svc.engine.connect() as conn:
        rows, next_cursor = await rq.run_telemetry(conn, flt, status, sort, limit, cursor)
    if wants_csv(request):
        return csv_response(rows, "runs")
    return RunPage(data=[RunRow(**r) for r in rows], next_cursor=next_cursor)


class PriceRow(BaseModel):
    requested: str
    id: str | None
    provider: str | None
    input_cost_per_token: float | None
    output_cost_per_token: float | None
    cache_read_input_token_cost: float | None
    cache_creation_input_token_cost: float | None


class PriceList(BaseModel):
    data: list[PriceRow]


@router.get("/pricing", dependencies=READ, response_model=PriceList)
async def pricing(
    request: Request,
    models: Annotated[str, Query(description="Comma-separated model names.")] = "",
) -> Any:
    """Prices per token from the vendored LiteLLM map (``id: null`` for an unknown model)."""
    names = [m.strip() for m in models.split(",") if m.strip()]
    if not names:
        raise BadRequest("Pass ?models=name1,name2 (for example claude-sonnet-4-5,gpt-5).")
    rows = []
    for name in names[:100]:
        price = price_for(name)
        rows.append(
            PriceRow(
                requested=name,
                id=price.id if price else None,
                provider=price.provider if price else None,
                input_cost_per_token=price.input_cost_per_token if price else None,
                output_cost_per_token=price.output_cost_per_token if price else None,
                cache_read_input_token_cost=price.cache_read_input_token_cost if price else None,
                cache_creation_input_token_cost=(
                    price.cache_creation_input_token_cost if price else None
                ),
            )
        )
    if wants_csv(request):
        return csv_response([r.model_dump() for r in rows], "pricing")
    return PriceList(data=rows)


class ActivityDay(BaseModel):
    date: str
    user_messages: int
    agent_messages: int


class ActivityList(BaseModel):
    data: list[ActivityDay]


@router.get("/activity", dependencies=READ, response_model=ActivityList)
async def activity(svc: Svc, flt: Flt, request: Request) -> Any:
    """Messages per local day, by role (operator and agent)."""
    async with svc.engine.connect() as conn:
        days = await q.usage_daily(conn, flt, ["user_messages", "agent_messages"])
    if wants_csv(request):
        return csv_response(days, "activity")
    return ActivityList(data=[ActivityDay(**d) for d in days])


class TokenDay(BaseModel):
    date: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float


class TokenDays(BaseModel):
    data: list[TokenDay]


@router.get("/token-usage", dependencies=READ, response_model=TokenDays)
async def token_usage(svc: Svc, flt: Flt, request: Request) -> Any:
    """Tokens (input, output, cache read, cache write) and cost per local day."""
    measures = ["input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens"]
    async with svc.engine.connect() as conn:
        days = await q.usage_daily(conn, flt, [*measures, "cost_usd"])
    if wants_csv(request):
        return csv_response(days, "token-usage")
    return TokenDays(data=[TokenDay(**d) for d in days])


class DecisionRow(BaseModel):
    rule: str
    tool: str
    allow: int
    ask: int
    deny: int


class DecisionList(BaseModel):
    data: list[DecisionRow]


@router.get("/policy-decisions", dependencies=READ, response_model=DecisionList)
async def policy_decisions(svc: Svc, flt: Flt, request: Request) -> Any:
    """Allow / ask / deny counts per rule and tool."""
    async with svc.engine.connect() as conn:
        rows = await rq.policy_decisions(conn, flt)
    if wants_csv(request):
        return csv_response(rows, "policy-decisions")
    return DecisionList(data=[DecisionRow(**r) for r in rows])
