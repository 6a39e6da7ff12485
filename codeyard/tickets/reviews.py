"""Reviews of a run's work: approved, changes requested, or commented, with comments anchored
to lines of the diff. "Changes requested" becomes the agent's next turn. A review of a ticket is
a review of its current run, so the merge gate reads one list either way.
"""

from __future__ import annotations

from typing import Any

from codeyard.auth.principal import Principal
from codeyard.domain import events as ev
from codeyard.domain.errors import Conflict, ValidationFailed
from codeyard.domain.events import utc_now
from codeyard.domain.ids import new_id
from codeyard.domain.status import ACTION_FROM, RunStatus
from codeyard.services import ownership, review
from codeyard.services import runs as run_service
from codeyard.services.context import Services
from codeyard.store import projects
from codeyard.store.writer import Tx
from codeyard.tickets import domain
from codeyard.tickets import service as tickets
from codeyard.tickets import store as ts


async def for_ticket(svc: Services, project_ref: str, number: int) -> list[dict[str, Any]]:
    ticket = await tickets.get(svc, project_ref, number)
    async with svc.engine.connect() as conn:
        return await ts.reviews_of(conn, ticket_id=ticket["id"])


async def for_run(svc: Services, run_ref: str) -> list[dict[str, Any]]:
    run = await run_service.get(svc, run_ref)
    async with svc.engine.connect() as conn:
        return await ts.reviews_of(conn, run_id=run["id"])


async def _check_anchors(
    svc: Services, run: dict[str, Any], comments: list[dict[str, Any]]
) -> None:
    """Each comment names a file the run changed (422 listing them otherwise)."""
    if not comments:
        return
    if not run["worktrees"]:
        raise ValidationFailed(
            f"Run {run['number']} has no worktree any more, so its diff lines cannot be "
            "commented on; leave the review's body instead.",
            errors=[{"loc": ["body", "comments"], "msg": "no diff to anchor to"}],
        )
    files = await review.diff(svc, run["id"], "json", None, None)
    changed = {f.get("path") for f in files if isinstance(f, dict)}
    for i, c in enumerate(comments):
        if c["path"] not in changed:
            raise ValidationFailed(
                f"Comment {i + 1} is on '{c['path']}', which run {run['number']} did not change; "
                f"comment on one of: {', '.join(sorted(p for p in changed if p)) or 'none'}.",
                errors=[{"loc": ["body", "comments", i, "path"], "msg": "not in the diff"}],
            )


async def submit(
    svc: Services,
    principal: Principal,
    run: dict[str, Any],
    verdict: str,
    body: str,
    comments: list[dict[str, Any]],
) -> dict[str, Any]:
    """Record the review (and its event on the run); ``changes_requested`` with something to
    say becomes the agent's next turn when the run can take one."""
    async with svc.engine.connect() as conn:
        project = await projects.get_project(conn, run["project_id"])
        ticket = await ts.ticket_of_run(conn, run["id"])
    ownership.require_project_manager(principal, project, "review its runs")
    await _check_anchors(svc, run, comments)
    values = {
        "id": new_id("rev"),
        "run_id": run["id"],
        "ticket_id": ticket["id"] if ticket else None,
        "verdict": verdict,
        "body": body,
        "comments": comments,
        "author_id": principal.user_id,
        "created_at": utc_now(),
    }

    async def job(tx: Tx) -> None:
        await ts.insert_review(tx, values)
        event = ev.ReviewSubmitted(
            review_id=values["id"],
            verdict=verdict,
            ticket=ticket["number"] if ticket else None,
            comments=len(comments),
        )
        await tx.emit_one(run["id"], event)

    await svc.writer.run(job)
    sent = False
    say = verdict == "changes_requested" and (body.strip() or comments)
    if say and RunStatus(run["status"]) in ACTION_FROM["message"]:
        text = domain.review_message(body, comments)
        await run_service.message(svc, run["id"], text, author="reviewer")
        sent = True
    return {**values, "sent_to_agent": sent}


async def submit_for_ticket(
    svc: Services,
    principal: Principal,
    project_ref: str,
    number: int,
    verdict: str,
    body: str,
    comments: list[dict[str, Any]],
) -> dict[str, Any]:
    ticket = await tickets.get(svc, project_ref, number)
    if not ticket["current_run_id"]:
        raise Conflict(
            f"Ticket #{number} has no run to review yet: start its agent with POST "
            f".../tickets/{number}/agent/start.",
        )
    run = await run_service.get(svc, ticket["current_run_id"])
    return await submit(svc, principal, run, verdict, body, comments)


async def submit_for_run(
    svc: Services, principal: Principal, run_ref: str, verdict: str, notes: str
) -> dict[str, Any]:
    """``POST /api/runs/{id}/approve|reject {notes}``: the same review on a plain run."""
    run = await run_service.get(svc, run_ref)
    return await submit(svc, principal, run, verdict, notes, [])
