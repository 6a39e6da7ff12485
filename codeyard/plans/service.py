"""Plan use cases: propose (the utility model), read, edit, accept into tickets, delete.

Reading follows tickets (anyone who may read runs); proposing, editing, accepting and deleting
are for the project's owner, its members and admins, like adding tickets. Accepting creates
every ticket of the plan in one transaction: all of them with their blockers, or none.
"""

from __future__ import annotations

from typing import Any

from codeyard.auth.principal import Principal
from codeyard.domain.errors import Conflict, ValidationFailed
from codeyard.domain.events import utc_now
from codeyard.domain.ids import new_id
from codeyard.plans import domain
from codeyard.plans import store as ps
from codeyard.services import utility
from codeyard.services.context import Services
from codeyard.store.writer import Tx
from codeyard.tickets import service as tickets
from codeyard.tickets import store as ts
from codeyard.tickets.domain import CLOSED, STATUSES
from codeyard.utility_model.prompts import prompt

#: At most this many open tickets are shown to the model (newest first).
CONTEXT_TICKETS = 60
OPEN = [s for s in STATUSES if s not in CLOSED]


async def propose(
    svc: Services, principal: Principal, project_ref: str, goal: str
) -> dict[str, Any]:
    """Ask the utility model for a plan reaching ``goal`` and keep it as a draft."""
    project = await tickets.managed_project(svc, principal, project_ref, "plan its work")
    if not goal.strip():
        raise ValidationFailed(
            "The goal is empty: say what the plan should achieve.",
            errors=[{"loc": ["body", "goal"], "msg": "empty"}],
        )
    async with svc.engine.connect() as conn:
        numbers = [n for n, _ in await ts.link_graph(conn, project["id"])]
        rows, _ = await ts.list_tickets(conn, project["id"], OPEN, CONTEXT_TICKETS, None)
    open_ones = [(r["number"], r["title"], r["status"]) for r in rows]
    answer = await utility.ask(
        svc,
        principal,
        "plan",
        None,
        prompt("plan"),
        domain.request_text(goal, open_ones[:CONTEXT_TICKETS]),
        domain.known_tickets_only(numbers),
    )
    now = utc_now()
    values = {
        "id": new_id("plan"),
        "project_id": project["id"],
        "goal": goal.strip(),
        **_content(answer.value),
        "status": domain.DRAFT,
        "ticket_numbers": None,
        "attempts": answer.attempts,
        "input_tokens": answer.input_tokens,
        "output_tokens": answer.output_tokens,
        "cost_usd": answer.cost_usd,
        "created_by": principal.user_id,
        "created_at": now,
        "updated_at": now,
    }
    await svc.writer.run(lambda tx: ps.insert_plan(tx, values))
    return values


def _content(proposal: domain.Proposal) -> dict[str, Any]:
    return {
        "title": proposal.title.strip(),
        "summary": proposal.summary,
        "tickets": [t.model_dump() for t in proposal.tickets],
    }


async def get(svc: Services, project_ref: str, plan_id: str) -> dict[str, Any]:
    project = await tickets.project_of(svc, project_ref)
    async with svc.engine.connect() as conn:
        return await ps.get_plan(conn, project, plan_id)


async def list_page(
    svc: Services, project_ref: str, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    project = await tickets.project_of(svc, project_ref)
    async with svc.engine.connect() as conn:
        return await ps.list_plans(conn, project["id"], limit, cursor)


def _draft(plan: dict[str, Any], what: str) -> None:
    if plan["status"] != domain.DRAFT:
        numbers = ", ".join(f"#{n}" for n in (plan["ticket_numbers"] or {}).values())
        raise Conflict(
            f"Plan '{plan['id']}' was accepted already (tickets {numbers}); it cannot {what}. "
            "Change the tickets themselves, or propose a new plan.",
            current_status=plan["status"],
        )


async def _existing_blockers(
    tx: Tx, project: dict[str, Any], plan_id: str, proposal: domain.Proposal
) -> None:
    """422 naming the ticket when a proposal waits for a ticket the project does not have."""
    existing = {n for n, _ in await ts.link_graph(tx.conn, project["id"])}
    for proposed in proposal.tickets:
        if gone := [n for n in proposed.blocked_by_tickets if n not in existing]:
            raise ValidationFailed(
                f"Ticket {proposed.ref} of the plan is blocked by "
                f"{', '.join(f'#{n}' for n in gone)}, which project '{project['slug']}' does "
                f"not have; edit the plan with PUT …/plans/{plan_id}.",
                errors=[{"loc": ["body", "tickets", proposed.ref], "msg": "unknown ticket"}],
            )


async def replace(
    svc: Services,
    principal: Principal,
    project_ref: str,
    plan_id: str,
    proposal: domain.Proposal,
) -> dict[str, Any]:
    """Replace a draft's title, summary and tickets (the edited proposal, checked again)."""
    project = await tickets.managed_project(svc, principal, project_ref, "edit its plans")

    async def job(tx: Tx) -> dict[str, Any]:
        plan = await ps.get_plan(tx.conn, project, plan_id)
        _draft(plan, "be edited")
        await _existing_blockers(tx, project, plan_id, proposal)
        return await ps.update_plan(tx, plan_id, _content(proposal))

    return await svc.writer.run(job)


async def accept(
    svc: Services, principal: Principal, project_ref: str, plan_id: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Create the plan's tickets (in the backlog, blockers first) with ``blocked_by`` set, and
    mark the plan accepted: one transaction, so a failure leaves no ticket behind."""
    project = await tickets.managed_project(svc, principal, project_ref, "accept its plans")

    async def job(tx: Tx) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        plan = await ps.get_plan(tx.conn, project, plan_id)
        _draft(plan, "be accepted again")
        proposal = domain.Proposal.model_validate(
            {"title": plan["title"], "summary": plan["summary"], "tickets": plan["tickets"]}
        )
        await _existing_blockers(tx, project, plan_id, proposal)
        numbers: dict[str, int] = {}
        made: list[dict[str, Any]] = []
        for proposed in domain.creation_order(proposal.tickets):
            body = {**proposed.model_dump(), "status": "backlog"}
            body["blocked_by"] = domain.blockers(proposed, numbers)
            row = tickets.new_row(project["id"], principal.user_id, body)
            row["number"] = await ts.next_number(tx, project["id"])
            await ts.insert_ticket(tx, row)
            numbers[proposed.ref] = row["number"]
            made.append(row)
        updated = await ps.update_plan(
            tx, plan_id, {"status": domain.ACCEPTED, "ticket_numbers": numbers}
        )
        return updated, made

    return await svc.writer.run(job)


async def delete(svc: Services, principal: Principal, project_ref: str, plan_id: str) -> None:
    """Forget a plan (an accepted plan's tickets stay)."""
    project = await tickets.managed_project(svc, principal, project_ref, "delete its plans")

    async def job(tx: Tx) -> None:
        await ps.get_plan(tx.conn, project, plan_id)
        await ps.delete_plan(tx, plan_id)

    await svc.writer.run(job)
