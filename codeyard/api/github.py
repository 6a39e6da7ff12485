"""GitHub webhooks (issue 21): the delivery endpoint GitHub calls, the inbox, and a sweep.

``POST /api/github/webhooks`` is public by design: GitHub cannot hold a Codeyard token, so the
HMAC signature over the raw body (``X-Hub-Signature-256`` with the configured secret) is the
permission; anything else is refused 403 with nothing stored. It answers 202 as soon as the
delivery is stored; processing happens in the background.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from codeyard.api.auth import require_scope
from codeyard.api.deps import Cursor, Limit, Svc
from codeyard.api.schemas import Body
from codeyard.domain.errors import BadRequest
from codeyard.services import github as github_service
from codeyard.services import github_platforms

router = APIRouter(tags=["github"])
public = APIRouter(tags=["github"])


class DeliveryAck(BaseModel):
    delivery_id: str
    duplicate: bool = Field(description="Stored before (a redelivery): acknowledged, ignored.")


class DeliveryRow(BaseModel):
    id: int
    delivery_id: str
    event: str
    action: str | None
    repo: str | None
    hook_id: str | None
    received_at: str
    processed_at: str | None
    outcome: str | None
    source: str


class DeliveryPage(BaseModel):
    data: list[DeliveryRow]
    next_cursor: str | None


class SweepResult(BaseModel):
    hooks: int
    listed: int
    redelivered: int
    problems: list[str]


@public.post(
    "/github/webhooks", status_code=202, response_model=DeliveryAck, include_in_schema=True
)
async def receive_webhook(request: Request, svc: Svc) -> dict[str, Any]:
    """A GitHub webhook delivery: 403 unless signed with the configured secret; stored once
    per ``X-GitHub-Delivery`` (a duplicate answers 202 with ``duplicate: true``)."""
    raw = await request.body()
    inbox = getattr(request.app.state, "github_inbox", None)
    return await github_service.receive(svc, request.headers, raw, inbox)


@router.get(
    "/github/webhooks/events",
    dependencies=[require_scope("settings:read")],
    response_model=DeliveryPage,
)
async def list_deliveries(
    svc: Svc,
    limit: Limit = 50,
    cursor: Cursor = None,
    event: str | None = Query(default=None, max_length=60),
) -> dict[str, Any]:
    """Deliveries received, newest first (without payloads), with what processing did."""
    before = None
    if cursor is not None:
        if not cursor.isdigit():
            raise BadRequest("cursor must be the next_cursor of the previous page.")
        before = int(cursor)
    return await github_service.deliveries(svc, limit, before, event)


@router.post(
    "/github/webhooks/sweep", dependencies=[require_scope("admin")], response_model=SweepResult
)
async def sweep_deliveries(svc: Svc) -> dict[str, Any]:
    """Now rather than at the next interval: ask GitHub for each known hook's failed
    deliveries that never arrived, and have them redelivered."""
    return await github_service.sweep(svc)


class PlatformStatus(BaseModel):
    platform: str
    web_host: str
    api_url: str
    connected_via: str | None = Field(
        description="`github` (token), `gh`, `gitlab` or `gitea`; null: not usable."
    )
    problems: list[str] = Field(description="What to do to connect, per way of connecting.")
    webhook_secret_configured: bool
    last_delivery_at: str | None
    polling: bool
    poll_budget_per_hour: int


class DetectRemoteBody(Body):
    path: str = Field(min_length=1, max_length=4096, description="A repository on the server.")


class DetectedRemote(BaseModel):
    remote: str = Field(description="origin's URL without credentials.")
    host: str | None
    repository: str | None
    platform: str | None
    pull_requests_via: str | None
    problem: str | None


@router.get(
    "/platforms/status",
    dependencies=[require_scope("settings:read")],
    response_model=list[PlatformStatus],
)
async def platform_status(svc: Svc) -> list[dict[str, Any]]:
    """How Codeyard reaches each hosting platform: token or ``gh``, webhooks, polling."""
    return await github_platforms.platforms(svc)


@router.post(
    "/github/detect-remote",
    dependencies=[require_scope("settings:write")],
    response_model=DetectedRemote,
)
async def detect_remote(body: DetectRemoteBody) -> dict[str, Any]:
    """A local repository's ``origin``: which platform, and whether pull requests can be opened
    there now (or what to fix)."""
    return await github_platforms.detect_remote(body.path)
