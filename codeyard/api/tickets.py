"""Tickets of a project and their comments: thin routes over ``codeyard.tickets.service``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from codeyard.api.auth import Caller, require_scope
from codeyard.api.deps import Cursor, Limit, Svc, listing
from codeyard.api.ticket_models import (
    CommentCreate,
    CommentView,
    Status,
    TicketAssignBody,
    TicketCreate,
    TicketHit,
    TicketStatusBody,
    TicketUpdate,
    TicketView,
)
from codeyard.api.views import Page
from codeyard.tickets import service

router = APIRouter(tags=["tickets"])
BASE = "/projects/{project_ref}/tickets"
N = Annotated[int, Path(ge=1, le=2_000_000_000, description="The ticket's number.")]
READ, WRITE = require_scope("runs:read"), require_scope("runs:write")


@router.get(BASE, dependencies=[READ], response_model=Page[TicketView])
async def list_tickets(
    project_ref: str,
    svc: Svc,
    status: Annotated[list[Status] | None, Query(description="Only these statuses.")] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Newest first; ``project_ref`` is the project's slug (or id)."""
    rows, next_cursor = await service.list_page(
        svc, project_ref, [str(s) for s in status] if status else None, limit, cursor
    )
    return listing(list(rows), next_cursor)


@router.post(BASE, dependencies=[WRITE], status_code=201, response_model=TicketView)
async def create_ticket(
    project_ref: str, body: TicketCreate, svc: Svc, principal: Caller
) -> dict[str, Any]:
    """Project owner, members or an admin; numbered next in the project."""
    return await service.create(svc, principal, project_ref, body.model_dump())


@router.get(f"{BASE}/search", dependencies=[READ], response_model=Page[TicketHit])
async def search_tickets(
    project_ref: str,
    svc: Svc,
    q: Annotated[str, Query(min_length=1, max_length=500, description="Words to find.")],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    """Tickets whose title or body has every word (as a prefix), best match first."""
    return listing(list(await service.search(svc, project_ref, q, limit)), None)


@router.get(f"{BASE}/{{number}}", dependencies=[READ], response_model=TicketView)
async def get_ticket(project_ref: str, number: N, svc: Svc) -> dict[str, Any]:
    return await service.get(svc, project_ref, number)


@router.patch(f"{BASE}/{{number}}", dependencies=[WRITE], response_model=TicketView)
async def update_ticket(
    project_ref: str, number: N, body: TicketUpdate, svc: Svc, principal: Caller
) -> dict[str, Any]:
    """Change any field; a status change follows the same rule as ``PATCH …/status``."""
    return await service.update(svc, principal, project_ref, number, body.data())


@router.patch(f"{BASE}/{{number}}/status", dependencies=[WRITE], response_model=TicketView)
async def move_ticket(
    project_ref: str, number: N, body: TicketStatusBody, svc: Svc, principal: Caller
) -> dict[str, Any]:
    """Move the card: open tickets go to any column; done or cancelled ones reopen into
    ``inbox`` or ``backlog`` first (409 otherwise)."""
    changes = {"status": body.status}
    return await service.update(svc, principal, project_ref, number, changes)


@router.patch(f"{BASE}/{{number}}/assign", dependencies=[WRITE], response_model=TicketView)
async def assign_ticket(
    project_ref: str, number: N, body: TicketAssignBody, svc: Svc, principal: Caller
) -> dict[str, Any]:
    """A user, an agent profile (its provider and options work the ticket), or nobody."""
    return await service.assign(svc, principal, project_ref, number, body.user_id, body.agent_id)


@router.get(f"{BASE}/{{number}}/comments", dependencies=[READ], response_model=Page[CommentView])
async def list_comments(project_ref: str, number: N, svc: Svc) -> dict[str, Any]:
    """Oldest first."""
    return listing(list(await service.comments(svc, project_ref, number)), None)


@router.post(
    f"{BASE}/{{number}}/comments",
    dependencies=[WRITE],
    status_code=201,
    response_model=CommentView,
)
async def add_comment(
    project_ref: str, number: N, body: CommentCreate, svc: Svc, principal: Caller
) -> dict[str, Any]:
    """Markdown; ``@name`` mentions are listed in ``mentions``."""
    return await service.add_comment(svc, principal, project_ref, number, body.body)
