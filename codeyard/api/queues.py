"""Work queues of a project: thin routes over ``codeyard.tickets.queues``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from codeyard.api.auth import Caller, require_scope
from codeyard.api.deps import Svc, listing
from codeyard.api.ticket_models import QueueCreate, QueueUpdate, QueueView
from codeyard.api.views import Page
from codeyard.tickets import queues

router = APIRouter(tags=["tickets"])
Q = "/projects/{project_ref}/discover/queues"
N = Annotated[int, Path(ge=1, le=2_000_000_000, description="The ticket's number.")]
READ, WRITE = require_scope("runs:read"), require_scope("runs:write")


@router.get(Q, dependencies=[READ], response_model=Page[QueueView])
async def list_queues(project_ref: str, svc: Svc) -> dict[str, Any]:
    return listing(list(await queues.list_all(svc, project_ref)), None)


@router.post(Q, dependencies=[WRITE], status_code=201, response_model=QueueView)
async def create_queue(
    project_ref: str, body: QueueCreate, svc: Svc, principal: Caller
) -> dict[str, Any]:
    """Tickets in order; an item starts when its blockers are done and a slot is free."""
    return await queues.create(svc, principal, project_ref, body.model_dump())


@router.get(f"{Q}/{{queue_id}}", dependencies=[READ], response_model=QueueView)
async def get_queue(project_ref: str, queue_id: str, svc: Svc) -> dict[str, Any]:
    return await queues.get(svc, project_ref, queue_id)


@router.patch(f"{Q}/{{queue_id}}", dependencies=[WRITE], response_model=QueueView)
async def update_queue(
    project_ref: str, queue_id: str, body: QueueUpdate, svc: Svc, principal: Caller
) -> dict[str, Any]:
    """Rename, reorder, ``max_parallel``, ``land``; the tickets only while not running."""
    return await queues.update(svc, principal, project_ref, queue_id, body.data())


@router.delete(f"{Q}/{{queue_id}}", dependencies=[WRITE], status_code=204)
async def delete_queue(project_ref: str, queue_id: str, svc: Svc, principal: Caller) -> Response:
    """409 while running (cancel it first); its tickets and runs stay."""
    await queues.delete(svc, principal, project_ref, queue_id)
    return Response(status_code=204)


@router.post(f"{Q}/{{queue_id}}/start", dependencies=[WRITE], response_model=QueueView)
async def start_queue(
    project_ref: str, queue_id: str, svc: Svc, principal: Caller
) -> dict[str, Any]:
    """Start or resume: eligible tickets get runs (from the default branch, so each starts from
    the previous one's merged result); each run in review is landed, then the next starts."""
    return await queues.start(svc, principal, project_ref, queue_id)


@router.post(f"{Q}/{{queue_id}}/cancel", dependencies=[WRITE], response_model=QueueView)
async def cancel_queue(
    project_ref: str, queue_id: str, svc: Svc, principal: Caller
) -> dict[str, Any]:
    """Stop the queue and cancel the runs it has working."""
    return await queues.cancel(svc, principal, project_ref, queue_id)


@router.post(f"{Q}/{{queue_id}}/release", dependencies=[WRITE], response_model=QueueView)
async def release_queue(
    project_ref: str, queue_id: str, svc: Svc, principal: Caller
) -> dict[str, Any]:
    """Reset every item to pending (409 while running)."""
    return await queues.release(svc, principal, project_ref, queue_id)


@router.post(
    f"{Q}/{{queue_id}}/items/{{number}}/retry", dependencies=[WRITE], response_model=QueueView
)
async def retry_item(
    project_ref: str, queue_id: str, number: N, svc: Svc, principal: Caller
) -> dict[str, Any]:
    """Run a failed ticket again (a new run) and resume the queue."""
    return await queues.settle_item(svc, principal, project_ref, queue_id, number, "retry")


@router.post(
    f"{Q}/{{queue_id}}/items/{{number}}/skip", dependencies=[WRITE], response_model=QueueView
)
async def skip_item(
    project_ref: str, queue_id: str, number: N, svc: Svc, principal: Caller
) -> dict[str, Any]:
    """Settle a failed ticket without landing it (its dependents go on) and resume."""
    return await queues.settle_item(svc, principal, project_ref, queue_id, number, "skip")
