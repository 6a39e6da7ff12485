"""An agent working a ticket: an ordinary run linked to the ticket.

The run's prompt is the ticket and its comments; its agent is the one asked for, else the
ticket's assigned agent profile, else the server's default. The ticket's diff and landing routes
act on its current run through the run services, so landing has one implementation.
"""

from __future__ import annotations

from typing import Any

from codeyard.auth.principal import Principal
from codeyard.domain import events as ev
from codeyard.domain.errors import Conflict, Forbidden
from codeyard.domain.status import ACTIVE, RunStatus
from codeyard.services import resolution, review
from codeyard.services import runs as run_service
from codeyard.services.context import Services
from codeyard.store import runs, users
from codeyard.store.writer import Tx
from codeyard.tickets import domain
from codeyard.tickets import service as tickets
from codeyard.tickets import store as ts

#: Run options a caller may pass when starting a ticket's agent (the rest come from the ticket).
START_FIELDS = ("agent_id", "provider", "model", "agent_options", "source_ref", "budget_usd")


async def prompt_for(svc: Services, ticket: dict[str, Any]) -> str:
    async with svc.engine.connect() as conn:
        comments = await ts.comments_of(conn, ticket["id"])
        names: dict[str | None, str] = {}
        for c in comments:
            if c["author_id"] and c["author_id"] not in names:
                user = await users.find(conn, c["author_id"])
                names[c["author_id"]] = user["username"] if user else c["author_id"]
    shown = [{"author": names.get(c["author_id"], "admin"), "body": c["body"]} for c in comments]
    return domain.run_prompt(ticket, shown)


async def start_run(
    svc: Services,
    principal: Principal,
    project: dict[str, Any],
    ticket: dict[str, Any],
    options: dict[str, Any],
    queue_id: str | None = None,
) -> dict[str, Any]:
    """Create the run for ``ticket``, link it, and move the ticket to ``in_progress``."""
    if ticket["current_run_id"]:
        async with svc.engine.connect() as conn:
            current = await runs.find(conn, ticket["current_run_id"])
        if current is not None and RunStatus(current["status"]) in ACTIVE:
            raise Conflict(
                f"Ticket #{ticket['number']} already has an agent working (run "
                f"{current['number']}, '{current['status']}'). Stop it first with POST "
                f".../tickets/{ticket['number']}/agent/stop, or send it a message.",
                run_id=current["id"],
            )
    body: dict[str, Any] = {k: v for k, v in options.items() if v is not None}
    if "agent_id" not in body and "provider" not in body and ticket["assignee_agent_id"]:
        body["agent_id"] = ticket["assignee_agent_id"]
    body |= {
        "prompt": await prompt_for(svc, ticket),
        "title": f"#{ticket['number']} {ticket['title']}"[:300],
        "project_id": project["id"],
        "labels": [f"ticket:{ticket['number']}"],
    }
    run = await run_service.create(svc, body, principal)

    async def link(tx: Tx) -> None:
        fresh = await ts.get_ticket(tx.conn, project, ticket["number"])
        changes: dict[str, Any] = {
            "run_ids": [*fresh["run_ids"], run["id"]],
            "current_run_id": run["id"],
        }
        if fresh["status"] not in (domain.T.IN_PROGRESS, *domain.CLOSED):
            changes["status"] = str(domain.T.IN_PROGRESS)
        await ts.update_ticket(tx, fresh["id"], changes)
        if queue_id is not None:
            advanced = ev.QueueAdvanced(queue_id=queue_id, ticket=ticket["number"])
            await tx.emit_one(run["id"], advanced)

    await svc.writer.run(link)
    return run


async def _ticket_and_run(
    svc: Services, principal: Principal | None, project_ref: str, number: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ticket and its current run; 409 when no agent has worked it; 403 when the caller
    may not act on that run (its creator or an admin)."""
    ticket = await tickets.get(svc, project_ref, number)
    if not ticket["current_run_id"]:
        raise Conflict(
            f"No agent has worked ticket #{number} yet: start one with POST "
            f".../tickets/{number}/agent/start.",
        )
    run = await run_service.get(svc, ticket["current_run_id"])
    if principal is not None and not principal.owns(run["created_by"]):
        raise Forbidden(
            f"Ticket #{number}'s run {run['number']} belongs to another user; only its creator "
            "or an admin may act on it.",
        )
    return ticket, run


async def start(
    svc: Services, principal: Principal, project_ref: str, number: int, options: dict[str, Any]
) -> dict[str, Any]:
    project = await tickets.managed_project(svc, principal, project_ref, "start agents on it")
    async with svc.engine.connect() as conn:
        ticket = await ts.get_ticket(conn, project, number)
    return runs.public(await start_run(svc, principal, project, ticket, options))


async def stop(
    svc: Services, principal: Principal, project_ref: str, number: int
) -> dict[str, Any]:
    _, run = await _ticket_and_run(svc, principal, project_ref, number)
    return await run_service.cancel(svc, run["id"])


async def message(
    svc: Services, principal: Principal, project_ref: str, number: int, text: str
) -> dict[str, Any]:
    _, run = await _ticket_and_run(svc, principal, project_ref, number)
    return await run_service.message(svc, run["id"], text)


async def status(svc: Services, project_ref: str, number: int) -> dict[str, Any]:
    ticket = await tickets.get(svc, project_ref, number)
    run = None
    if ticket["current_run_id"]:
        run = runs.public(await run_service.get(svc, ticket["current_run_id"]))
    return {
        "ticket": number,
        "working": run is not None and RunStatus(run["status"]) in ACTIVE,
        "run": run,
        "run_ids": ticket["run_ids"],
    }


async def diff(
    svc: Services, project_ref: str, number: int, fmt: Any, paths: list[str] | None
) -> str | list[dict[str, Any]]:
    _, run = await _ticket_and_run(svc, None, project_ref, number)
    return await review.diff(svc, run["id"], fmt, paths, None)


async def diff_stats(svc: Services, project_ref: str, number: int) -> dict[str, int]:
    _, run = await _ticket_and_run(svc, None, project_ref, number)
    return await review.stats(svc, run["id"])


async def land(
    svc: Services, principal: Principal, project_ref: str, number: int, body: dict[str, Any]
) -> dict[str, Any]:
    """Merge (or squash/rebase), open a pull request, or discard the current run's work.

    Merged: the ticket is ``done``; discarded: back to ``backlog``. The run service applies
    the ``require_review_to_merge`` gate.
    """
    _, run = await _ticket_and_run(svc, principal, project_ref, number)
    result = await resolution.resolve(svc, run["id"], body, principal)
    await sync_ticket(svc, result)
    return result


async def sync_ticket(svc: Services, run: dict[str, Any]) -> dict[str, Any] | None:
    """Move the ticket a run works with the run: its turn ended → ``in_review``; merged →
    ``done``; discarded → ``backlog``. Other statuses, and closed tickets, stay."""
    wanted = domain.status_for_run(run["status"], run.get("resolution"))
    if wanted is None:
        return None

    async def job(tx: Tx) -> dict[str, Any] | None:
        ticket = await ts.ticket_of_run(tx.conn, run["id"])
        if ticket is None or ticket["status"] == wanted:
            return ticket
        if domain.TicketStatus(ticket["status"]) in domain.CLOSED and wanted != domain.T.DONE:
            return ticket
        return await ts.update_ticket(tx, ticket["id"], {"status": str(wanted)})

    return await svc.writer.run(job)
