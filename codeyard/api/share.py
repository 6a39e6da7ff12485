"""Share links: create and revoke on a run; the public, read-only views behind a link."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse

from codeyard.api.account_views import NewShareView, ShareView
from codeyard.api.auth import Caller, require_scope
from codeyard.api.deps import Limit, Svc, listing
from codeyard.api.streams import event_stream
from codeyard.api.views import EventView, Page, RunView
from codeyard.services import shares
from codeyard.services.auth import AuthState
from codeyard.store import events, runs

router = APIRouter(tags=["share links"])
public = APIRouter(prefix="/share", tags=["share links"])


class ShareBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ttl_hours: float = Field(default=24, gt=0, le=24 * 90, description="Hours until it expires.")


def _state(request: Request) -> AuthState:
    state: AuthState = request.app.state.auth
    return state


@router.post(
    "/runs/{run_ref}/share",
    status_code=201,
    dependencies=[require_scope("runs:write")],
    response_model=NewShareView,
)
async def create_share(
    request: Request, run_ref: str, principal: Caller, svc: Svc, body: ShareBody | None = None
) -> dict[str, Any]:
    """A read-only link to this run: ``{id, token, url, expires_at}``; the token is shown once.

    The URL starts with the configured ``CODEYARD_PUBLIC_URL`` (else the server's address),
    never with the request's Host header.
    """
    ttl = (body or ShareBody()).ttl_hours
    link = await shares.create(svc, _state(request), principal, run_ref, ttl)
    return {**link, "url": f"{svc.settings.external_url}/share/{link['token']}"}


@router.get(
    "/runs/{run_ref}/shares",
    dependencies=[require_scope("runs:read")],
    response_model=Page[ShareView],
)
async def list_shares(run_ref: str, svc: Svc) -> dict[str, Any]:
    """The run's live and expired links (never their tokens)."""
    return listing(list(await shares.list_for_run(svc, run_ref)), None)


@router.delete(
    "/runs/{run_ref}/shares/{share_id}",
    status_code=204,
    dependencies=[require_scope("runs:write")],
)
async def revoke_share(run_ref: str, share_id: str, svc: Svc) -> Response:
    await shares.revoke(svc, run_ref, share_id)
    return Response(status_code=204)


@public.get("/{token}/run", response_model=RunView)
async def shared_run(request: Request, token: str, svc: Svc) -> dict[str, Any]:
    """Public: the shared run (unknown, expired or revoked link → 404)."""
    return runs.public(await shares.shared_run(svc, _state(request), token))


@public.get("/{token}/events", response_model=Page[EventView])
async def shared_events(
    request: Request,
    token: str,
    svc: Svc,
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Limit = 100,
) -> dict[str, Any]:
    """Public: the shared run's events after ``after``, ascending (like /runs/{id}/events)."""
    run = await shares.shared_run(svc, _state(request), token)
    async with svc.engine.connect() as conn:
        rows = await events.read(conn, run_id=run["id"], after=after, limit=limit + 1)
    page = rows[:limit]
    next_cursor = str(page[-1].id) if len(rows) > limit else None
    return listing([e.to_dict() for e in page], next_cursor)


@public.get("/{token}/events/stream", response_class=EventSourceResponse)
async def shared_stream(
    request: Request,
    token: str,
    svc: Svc,
    last_event_id: Annotated[str | None, Header()] = None,
    after: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
) -> EventSourceResponse:
    """Public SSE of the shared run (same replay rules as /runs/{id}/events/stream)."""
    run = await shares.shared_run(svc, _state(request), token)
    return event_stream(svc, run["id"], last_event_id, after)
