"""Tickets and their comments: create, change, move, assign, list, search.

Anyone who may read runs may read a project's tickets (projects are listed to every reader);
changing them is for the project's owner, its members and admins, like the project itself.
Parents and blockers are ticket numbers of the same project; a blocker cycle is refused.
"""

from __future__ import annotations

from typing import Any

from codeyard.auth.principal import Principal
from codeyard.domain.errors import ValidationFailed
from codeyard.domain.events import utc_now
from codeyard.domain.ids import new_id
from codeyard.services import ownership
from codeyard.services.context import Services
from codeyard.store import projects, users
from codeyard.store.writer import Tx
from codeyard.tickets import domain
from codeyard.tickets import store as ts


async def project_of(svc: Services, ref: str) -> dict[str, Any]:
    async with svc.engine.connect() as conn:
        return await projects.get_project(conn, ref)


async def managed_project(
    svc: Services, principal: Principal, ref: str, what: str
) -> dict[str, Any]:
    project = await project_of(svc, ref)
    ownership.require_project_manager(principal, project, what)
    return project


async def get(svc: Services, project_ref: str, number: int) -> dict[str, Any]:
    project = await project_of(svc, project_ref)
    async with svc.engine.connect() as conn:
        return await ts.get_ticket(conn, project, number)


def _invalid(field: str, detail: str) -> ValidationFailed:
    return ValidationFailed(detail, errors=[{"loc": ["body", field], "msg": detail}])


async def _check_links(
    tx: Tx, project: dict[str, Any], number: int | None, parent: int | None, blocked_by: list[int]
) -> None:
    """Parent and blockers exist in the project, are not the ticket itself, make no cycle."""
    wanted = {n for n in [parent, *blocked_by] if n is not None}
    if number is not None and number in wanted:
        raise _invalid("blocked_by", f"Ticket #{number} cannot be its own parent or blocker.")
    graph: dict[int, list[int]] = {}
    for row in await ts.link_graph(tx.conn, project["id"]):
        graph[row[0]] = list(row[1] or [])
    if missing := sorted(n for n in wanted if n not in graph):
        raise _invalid(
            "blocked_by" if set(missing) - {parent} else "parent",
            f"No ticket {', '.join(f'#{n}' for n in missing)} in project '{project['slug']}'.",
        )
    if number is None:
        return
    graph[number] = list(blocked_by)
    seen: set[int] = set()
    stack = list(blocked_by)
    while stack:  # does any blocker (transitively) wait for this ticket?
        n = stack.pop()
        if n == number:
            raise _invalid(
                "blocked_by",
                f"Ticket #{number} would wait for itself through its blockers; remove one of "
                f"{', '.join(f'#{b}' for b in blocked_by)}.",
            )
        if n not in seen:
            seen.add(n)
            stack.extend(graph.get(n, []))


def new_row(project_id: str, created_by: str | None, body: dict[str, Any]) -> dict[str, Any]:
    """A ticket row from a create body (defaults filled in), without its number: plans make
    tickets with the same defaults."""
    now = utc_now()
    return {
        "id": new_id("tkt"),
        "project_id": project_id,
        "title": body["title"].strip(),
        "body": body.get("body") or "",
        "kind": body.get("kind") or "task",
        "priority": body.get("priority") or "none",
        "status": body.get("status") or "inbox",
        "labels": list(dict.fromkeys(body.get("labels") or [])),
        "parent": body.get("parent"),
        "blocked_by": list(dict.fromkeys(body.get("blocked_by") or [])),
        "assignee_user_id": None,
        "assignee_agent_id": None,
        "run_ids": [],
        "current_run_id": None,
        "created_by": created_by,
        "created_at": now,
        "updated_at": now,
    }


async def create(
    svc: Services, principal: Principal, project_ref: str, body: dict[str, Any]
) -> dict[str, Any]:
    project = await managed_project(svc, principal, project_ref, "add tickets")
    values = new_row(project["id"], principal.user_id, body)
    blocked_by = values["blocked_by"]
    if not values["title"]:
        raise _invalid("title", "The title is empty: say what the ticket is about.")

    async def job(tx: Tx) -> dict[str, Any]:
        await _check_links(tx, project, None, values["parent"], blocked_by)
        values["number"] = await ts.next_number(tx, project["id"])
        await ts.insert_ticket(tx, values)
        return dict(values)

    return await svc.writer.run(job)


async def update(
    svc: Services, principal: Principal, project_ref: str, number: int, changes: dict[str, Any]
) -> dict[str, Any]:
    """Change fields (``status`` too, by the same rule as ``PATCH …/status``)."""
    project = await managed_project(svc, principal, project_ref, "change its tickets")
    changes = dict(changes)
    if "title" in changes:
        changes["title"] = (changes["title"] or "").strip()
        if not changes["title"]:
            raise _invalid("title", "The title is empty: say what the ticket is about.")
    if "labels" in changes:
        changes["labels"] = list(dict.fromkeys(changes["labels"] or []))
    if "blocked_by" in changes:
        changes["blocked_by"] = list(dict.fromkeys(changes["blocked_by"] or []))

    async def job(tx: Tx) -> dict[str, Any]:
        ticket = await ts.get_ticket(tx.conn, project, number)
        if "status" in changes:
            domain.check_move(number, ticket["status"], changes["status"])
        if "parent" in changes or "blocked_by" in changes:
            await _check_links(
                tx,
                project,
                number,
                changes.get("parent", ticket["parent"]),
                changes.get("blocked_by", ticket["blocked_by"]),
            )
        if not changes:
            return ticket
        return await ts.update_ticket(tx, ticket["id"], changes)

    return await svc.writer.run(job)


async def assign(
    svc: Services,
    principal: Principal,
    project_ref: str,
    number: int,
    user_id: str | None,
    agent_id: str | None,
) -> dict[str, Any]:
    """Assign to a user, an agent profile, both, or nobody (both ``null``)."""
    project = await managed_project(svc, principal, project_ref, "assign its tickets")
    async with svc.engine.connect() as conn:
        if user_id is not None and await users.find(conn, user_id) is None:
            raise _invalid("user_id", f"No user '{user_id}'. List users with GET /api/users.")
        if agent_id is not None:
            await projects.get_agent(conn, agent_id)

    async def job(tx: Tx) -> dict[str, Any]:
        ticket = await ts.get_ticket(tx.conn, project, number)
        values = {"assignee_user_id": user_id, "assignee_agent_id": agent_id}
        return await ts.update_ticket(tx, ticket["id"], values)

    return await svc.writer.run(job)


async def list_page(
    svc: Services, project_ref: str, statuses: list[str] | None, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    project = await project_of(svc, project_ref)
    async with svc.engine.connect() as conn:
        return await ts.list_tickets(conn, project["id"], statuses, limit, cursor)


async def search(svc: Services, project_ref: str, query: str, limit: int) -> list[dict[str, Any]]:
    """Ranked matches for every word of ``query`` (prefixes), best first, with ``score``."""
    project = await project_of(svc, project_ref)
    terms = domain.search_terms(query)
    if not terms:
        raise _invalid("q", "The search has no words; type part of a title or body.")
    async with svc.engine.connect() as conn:
        found = await ts.search(conn, project["id"], terms, limit)
    return [{**ticket, "score": score} for ticket, score in found]


async def comments(svc: Services, project_ref: str, number: int) -> list[dict[str, Any]]:
    ticket = await get(svc, project_ref, number)
    async with svc.engine.connect() as conn:
        return await ts.comments_of(conn, ticket["id"])


async def add_comment(
    svc: Services, principal: Principal, project_ref: str, number: int, body: str
) -> dict[str, Any]:
    project = await managed_project(svc, principal, project_ref, "comment on its tickets")
    if not body.strip():
        raise _invalid("body", "The comment is empty.")
    values = {
        "id": new_id("cmt"),
        "author_id": principal.user_id,
        "body": body,
        "mentions": domain.mentions(body),
        "created_at": utc_now(),
    }

    async def job(tx: Tx) -> dict[str, Any]:
        ticket = await ts.get_ticket(tx.conn, project, number)
        values["ticket_id"] = ticket["id"]
        await ts.insert_comment(tx, values)
        return dict(values)

    return await svc.writer.run(job)
