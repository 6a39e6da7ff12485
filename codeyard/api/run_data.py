"""What a run did, folded from its events: events, snapshot, transcript, logs and the rest."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse

from codeyard.api.auth import require_scope
from codeyard.api.deps import Svc
from codeyard.api.run_data_views import (
    CommandView,
    SummaryView,
    TasksView,
    TelemetryView,
    TimelineView,
    TranscriptView,
)
from codeyard.api.views import EventView, Page, SnapshotView
from codeyard.domain import fold
from codeyard.domain.events import StoredEvent
from codeyard.services import runs as run_service
from codeyard.store import events, runs

router = APIRouter(prefix="/runs", tags=["run data"])


async def _all(svc: Svc, run_ref: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    async with svc.engine.connect() as conn:
        run = await runs.get(conn, run_ref)
        stored = await events.read_all(conn, run["id"])
    return run, [e.to_dict() for e in stored]


def _types(types: str | None) -> frozenset[str] | None:
    return frozenset(t for t in types.split(",") if t) if types else None


@router.get(
    "/{run_ref}/events", dependencies=[require_scope("runs:read")], response_model=Page[EventView]
)
async def list_events(
    run_ref: str,
    svc: Svc,
    after: Annotated[
        int, Query(ge=0, le=2**63 - 1, description="Return events with id greater than this.")
    ] = 0,
    types: Annotated[str | None, Query(description="Comma-separated event types.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Paged backfill, ascending. ``next_cursor`` is the id to pass as ``after``."""
    async with svc.engine.connect() as conn:
        run = await runs.get(conn, run_ref)
        page = await events.read(
            conn, run_id=run["id"], types=_types(types), after=after, limit=limit + 1
        )
    more = len(page) > limit
    page = page[:limit]
    return {"data": [e.to_dict() for e in page], "next_cursor": str(page[-1].id) if more else None}


@router.get(
    "/{run_ref}/snapshot", dependencies=[require_scope("runs:read")], response_model=SnapshotView
)
async def snapshot(run_ref: str, svc: Svc) -> dict[str, Any]:
    """Everything a client needs to draw a run in one request; stream from ``last_event_id``."""
    async with svc.engine.connect() as conn:
        run = await runs.get(conn, run_ref)
        tail: list[StoredEvent] = await events.read_tail(conn, run["id"], 200)
    return {
        "run": runs.public(run),
        "approvals": [],
        "events": [e.to_dict() for e in tail],
        "last_event_id": tail[-1].id if tail else 0,
        "diff_stats": run["diff_stats"],
        "tasks": fold.tasks([e.to_dict() for e in tail if e.type == "task.updated"]),
    }


@router.get(
    "/{run_ref}/transcript",
    dependencies=[require_scope("runs:read")],
    response_model=TranscriptView,
)
async def transcript(run_ref: str, svc: Svc) -> dict[str, Any]:
    run, evs = await _all(svc, run_ref)
    return {"run_id": run["id"], "items": fold.transcript(evs)}


@router.get(
    "/{run_ref}/timeline", dependencies=[require_scope("runs:read")], response_model=TimelineView
)
async def timeline(run_ref: str, svc: Svc) -> dict[str, Any]:
    run, evs = await _all(svc, run_ref)
    return {"run_id": run["id"], "items": fold.timeline(evs)}


@router.get("/{run_ref}/tasks", dependencies=[require_scope("runs:read")], response_model=TasksView)
async def tasks(run_ref: str, svc: Svc) -> dict[str, Any]:
    run, evs = await _all(svc, run_ref)
    return {"run_id": run["id"], "tasks": fold.tasks(evs)}


@router.get(
    "/{run_ref}/commands",
    dependencies=[require_scope("runs:read")],
    response_model=Page[CommandView],
)
async def commands(run_ref: str, svc: Svc) -> dict[str, Any]:
    _, evs = await _all(svc, run_ref)
    return {"data": fold.commands(evs), "next_cursor": None}


@router.get(
    "/{run_ref}/telemetry", dependencies=[require_scope("runs:read")], response_model=TelemetryView
)
async def telemetry(run_ref: str, svc: Svc) -> dict[str, Any]:
    run, evs = await _all(svc, run_ref)
    return {"run_id": run["id"], **fold.telemetry(evs)}


@router.get(
    "/{run_ref}/summary", dependencies=[require_scope("runs:read")], response_model=SummaryView
)
async def summary(run_ref: str, svc: Svc) -> dict[str, Any]:
    run, evs = await _all(svc, run_ref)
    return {"run_id": run["id"], **fold.summary(evs)}


@router.get(
    "/{run_ref}/logs", dependencies=[require_scope("runs:read")], response_class=PlainTextResponse
)
async def logs(
    run_ref: str,
    svc: Svc,
    tail: Annotated[int | None, Query(ge=1, description="Only the last N lines.")] = None,
) -> PlainTextResponse:
    """Raw agent output (commands and their output for the script agent)."""
    run = await run_service.get(svc, run_ref)
    path = svc.settings.logs_root / f"{run['id']}.log"
    text = path.read_text(errors="replace") if path.exists() else ""
    if tail is not None:
        text = "\n".join(text.splitlines()[-tail:]) + ("\n" if text else "")
    return PlainTextResponse(text)
