"""``GET /api/events?channel=…``: the seed's channel stream over Codeyard's event log."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from sqlalchemy import func, select
from sse_starlette import EventSourceResponse

from codeyard.api.auth import Caller, require_scope
from codeyard.api.deps import Svc
from codeyard.api.streams import PING_SECONDS, released, stream_slot
from codeyard.domain.caps import caller_key
from codeyard.domain.errors import BadRequest, NotFound
from codeyard.events.hub import EventFilter
from codeyard.events.stream import follow
from codeyard.services.context import Services
from codeyard.store import projects, schema
from codeyard.tickets import store as ts
from codeyard.tickets.channels import Channels

router = APIRouter(tags=["streams"])


async def _channels(svc: Services, names: list[str]) -> Channels:
    """Resolve ``ticket:{id}`` / ``project:{id or slug}`` / ``*`` (404 for unknown objects)."""
    chosen = Channels(everything=not names or "*" in names)
    async with svc.engine.connect() as conn:
        for name in names:
            kind, _, ref = name.partition(":")
            if name == "*":
                continue
            if kind == "project" and ref:
                chosen.project_ids.add((await projects.get_project(conn, ref))["id"])
            elif kind == "ticket" and ref:
                found = await ts.tickets_by_ids(conn, [ref])
                if not found:
                    raise NotFound(f"No ticket '{ref}' (channel '{name}'): use a ticket's id.")
                ticket = found[0]
                chosen.tickets[(ticket["project_id"], ticket["number"])] = ticket["id"]
                for run_id in ticket["run_ids"]:
                    chosen.run_tickets[run_id] = ticket["id"]
            else:
                raise BadRequest(
                    f"Unknown channel '{name}': use ticket:{{ticket id}}, project:{{id or slug}} "
                    "or *.",
                )
    return chosen


async def _newest_id(svc: Services) -> int:
    async with svc.engine.connect() as conn:
        return int((await conn.execute(select(func.max(schema.events.c.id)))).scalar() or 0)


async def _messages(
    svc: Services, chosen: Channels, after: int, release: Callable[[], None]
) -> AsyncIterator[dict[str, Any]]:
    try:
        async for batch in follow(svc.engine, svc.hub, EventFilter(), after):
            for event in batch:
                if chosen.wants(event):
                    yield chosen.frame(event)
    finally:
        release()


@router.get(
    "/events", dependencies=[require_scope("runs:read")], response_class=EventSourceResponse
)
async def channel_stream(
    svc: Svc,
    principal: Caller,
    channel: Annotated[
        list[str] | None,
        Query(description="Repeatable: ticket:{ticket id}, project:{id or slug}, or * (all)."),
    ] = None,
    last_event_id: Annotated[str | None, Header()] = None,
    after: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
) -> EventSourceResponse:
    """SSE with the seed's event names (``agent:text_delta``, ``queue:paused``…); live from
    now, or replayed after ``Last-Event-ID`` / ``?after=``. Counts against
    ``max_streams_per_user``."""
    chosen = await _channels(svc, [c for c in channel or [] if c])
    given = last_event_id if last_event_id and last_event_id.isdigit() else None
    start = int(given) if given else after if after is not None else await _newest_id(svc)
    release = stream_slot(svc, caller_key(principal.user_id, principal.name))
    return EventSourceResponse(
        _messages(svc, chosen, start, release),
        ping=PING_SECONDS,
        headers={"X-Accel-Buffering": "no"},
        background=released(release),
    )
