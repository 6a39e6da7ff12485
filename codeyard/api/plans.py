"""Plans of a project (issue 19): thin routes over ``codeyard.plans.service``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response
from pydantic import Field

from codeyard.api.auth import Caller, require_scope
from codeyard.api.deps import Cursor, Limit, Svc, listing
from codeyard.api.schemas import Body
from codeyard.api.ticket_models import TicketView
from codeyard.api.views import Page, View
from codeyard.plans import service
from codeyard.plans.domain import Proposal, ProposedTicket

router = APIRouter(tags=["plans"])
BASE = "/projects/{project_ref}/plans"
PlanId = Annotated[str, Path(max_length=40, description="The plan's id.")]
READ, WRITE = require_scope("runs:read"), require_scope("runs:write")


class PlanCreate(Body):
    goal: str = Field(
        min_length=1,
        max_length=20_000,
        description="What the plan should achieve (Markdown).",
        examples=["Let users export their reports as CSV"],
    )


class PlanView(View):
    id: str
    project_id: str
    goal: str
    title: str
    summary: str
    #: The proposed tickets; ``blocked_by`` names other proposals by ``ref``.
    tickets: list[ProposedTicket]
    #: ``draft`` (editable) or ``accepted`` (its tickets exist).
    status: str
    #: Once accepted: the ticket number each ``ref`` became.
    ticket_numbers: dict[str, int] | None
    #: The utility model's attempts (2 when its first answer did not fit), tokens and cost.
    attempts: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    created_by: str | None
    created_at: str
    updated_at: str


class PlanAccepted(View):
    plan: PlanView
    #: The tickets made, blockers first (so in number order).
    tickets: list[TicketView]


@router.post(BASE, dependencies=[WRITE], status_code=201, response_model=PlanView)
async def propose_plan(
    project_ref: str, body: PlanCreate, svc: Svc, principal: Caller
) -> dict[str, Any]:
    """The utility model proposes tickets with dependencies for the goal; kept as a draft to
    edit and accept (409 when no utility model is configured)."""
    return await service.propose(svc, principal, project_ref, body.goal)


@router.get(BASE, dependencies=[READ], response_model=Page[PlanView])
async def list_plans(
    project_ref: str, svc: Svc, limit: Limit = 50, cursor: Cursor = None
) -> dict[str, Any]:
    """Newest first."""
    rows, next_cursor = await service.list_page(svc, project_ref, limit, cursor)
    return listing(list(rows), next_cursor)


@router.get(f"{BASE}/{{plan_id}}", dependencies=[READ], response_model=PlanView)
async def get_plan(project_ref: str, plan_id: PlanId, svc: Svc) -> dict[str, Any]:
    return await service.get(svc, project_ref, plan_id)


@router.put(f"{BASE}/{{plan_id}}", dependencies=[WRITE], response_model=PlanView)
async def edit_plan(
    project_ref: str, plan_id: PlanId, body: Proposal, svc: Svc, principal: Caller
) -> dict[str, Any]:
    """Replace a draft's title, summary and tickets (same rules as the model's answer: unique
    refs, blockers inside the plan or existing tickets, no cycle); 409 once accepted."""
    return await service.replace(svc, principal, project_ref, plan_id, body)


@router.post(f"{BASE}/{{plan_id}}/accept", dependencies=[WRITE], response_model=PlanAccepted)
async def accept_plan(
    project_ref: str, plan_id: PlanId, svc: Svc, principal: Caller
) -> dict[str, Any]:
    """Create every ticket of the plan in the backlog with ``blocked_by`` set, in one
    transaction (all or none); 409 when it was accepted already."""
    plan, made = await service.accept(svc, principal, project_ref, plan_id)
    return {"plan": plan, "tickets": made}


@router.delete(f"{BASE}/{{plan_id}}", dependencies=[WRITE], status_code=204)
async def delete_plan(project_ref: str, plan_id: PlanId, svc: Svc, principal: Caller) -> Response:
    """Forget the plan; tickets it created stay."""
    await service.delete(svc, principal, project_ref, plan_id)
    return Response(status_code=204)
