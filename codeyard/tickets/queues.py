"""Work queues: tickets run one after another (or ``max_parallel`` at a time), each landed
before the next starts, so the next ticket's run starts from the previous one's merged result.
With ``land = stack`` nothing is merged: each ticket's run starts from the previous ticket's
branch and opens a pull request based on that branch (stacked PRs), one ticket at a time.

A failed, cancelled, interrupted or budget-stopped run, or a landing that conflicts, pauses the
queue with the reason (``queue.paused`` on that run). ``start`` resumes; ``retry`` and ``skip``
settle the failed ticket and resume. The follower (``follower.py``) feeds run status changes in;
the queue's rows are the state, so a restart picks up where it was (``reconcile``).

This module manages queues (the routes' side: create, change, start, cancel, release, settle
an item); driving them (``advance``, settling a run's item, ``reconcile``) is
``queue_driver``'s, and both take a queue's lock from ``queue_locks``.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from codeyard.auth.principal import Principal
from codeyard.domain.errors import Conflict, ValidationFailed
from codeyard.domain.events import utc_now
from codeyard.domain.ids import new_id
from codeyard.domain.status import ACTIVE, RunStatus
from codeyard.services import ownership
from codeyard.services import runs as run_service
from codeyard.services.context import Services
from codeyard.store import projects, runs
from codeyard.store.writer import Tx
from codeyard.tickets import domain
from codeyard.tickets import service as tickets
from codeyard.tickets import store as ts
from codeyard.tickets.domain import FAILED, PENDING, RUNNING, SKIPPED
from codeyard.tickets.queue_driver import advance, spent, tickets_of
from codeyard.tickets.queue_locks import lock


def public(queue: dict[str, Any]) -> dict[str, Any]:
    """The queue with its items in order: ``{ticket, state, run_id, reason}``."""
    items = [
        {
            "ticket": n,
            "state": queue["items"].get(str(n), {}).get("state", PENDING),
            "run_id": queue["items"].get(str(n), {}).get("run_id"),
            "reason": queue["items"].get(str(n), {}).get("reason"),
        }
        for n in queue["tickets"]
    ]
    return {**{k: v for k, v in queue.items() if k != "items"}, "items": items}


async def _check_tickets(svc: Services, project: dict[str, Any], numbers: list[int]) -> None:
    async with svc.engine.connect() as conn:
        known = {n for n, _ in await ts.link_graph(conn, project["id"])}
    if missing := [n for n in numbers if n not in known]:
        raise ValidationFailed(
            f"No ticket {', '.join(f'#{n}' for n in missing)} in project '{project['slug']}'.",
            errors=[{"loc": ["body", "tickets"], "msg": f"unknown: {missing}"}],
        )


def _check_stack(land: str, max_parallel: int) -> None:
    if land == "stack" and max_parallel != 1:
        reason = (
            "A stacked queue runs one ticket at a time (each starts from the previous one's "
            "branch): set max_parallel to 1, or land by merge."
        )
        raise ValidationFailed(reason, errors=[{"loc": ["body", "max_parallel"], "msg": reason}])


async def create(
    svc: Services, principal: Principal, project_ref: str, body: dict[str, Any]
) -> dict[str, Any]:
    project = await tickets.managed_project(svc, principal, project_ref, "add work queues")
    _check_stack(body.get("land") or "merge", body.get("max_parallel") or 1)
    numbers = list(dict.fromkeys(body.get("tickets") or []))
    await _check_tickets(svc, project, numbers)
    now = utc_now()
    values = {
        "id": new_id("wq"),
        "project_id": project["id"],
        "name": body["name"],
        "tickets": numbers,
        "items": {},
        "max_parallel": body.get("max_parallel") or 1,
        "land": body.get("land") or "merge",
        "status": "idle",
        "paused_reason": None,
        "budget_usd": body.get("budget_usd"),
        "created_by": principal.user_id,
        "created_at": now,
        "updated_at": now,
    }
    await svc.writer.run(lambda tx: ts.insert_queue(tx, values))
    return await describe(svc, values)


async def _eta(svc: Services, queue: dict[str, Any]) -> dict[str, Any]:
    """The remaining tickets' expected time from how long the project's landed tickets took
    (by kind): see ``domain.eta_seconds``."""
    async with svc.engine.connect() as conn:
        project = await projects.get_project(conn, queue["project_id"])
        done, _ = await ts.list_tickets(conn, project["id"], [str(domain.T.DONE)], 200, None)
        samples: dict[str, list[float]] = defaultdict(list)
        for ticket in done:
            run = await runs.find(conn, ticket["current_run_id"] or "")
            if run and run["started_at"] and run["finished_at"]:
                took = datetime.fromisoformat(run["finished_at"]) - datetime.fromisoformat(
                    run["started_at"]
                )
                samples[ticket["kind"]].append(max(0.0, took.total_seconds()))
        left = [
            n
            for n in queue["tickets"]
            if queue["items"].get(str(n), {}).get("state", PENDING) not in domain.SETTLED
        ]
        kinds = [t["kind"] for t in await tickets_of(conn, project, left)]
    seconds, used = domain.eta_seconds(kinds, samples, queue["max_parallel"])
    return {"remaining": len(left), "seconds": seconds, "samples": used}


async def describe(svc: Services, queue: dict[str, Any]) -> dict[str, Any]:
    """``public`` plus what the queue spent and its ETA."""
    return {**public(queue), "spent_usd": await spent(svc, queue), "eta": await _eta(svc, queue)}


async def _load(
    svc: Services, project_ref: str, queue_id: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    project = await tickets.project_of(svc, project_ref)
    async with svc.engine.connect() as conn:
        return project, await ts.get_queue(conn, project, queue_id)


async def list_all(svc: Services, project_ref: str) -> list[dict[str, Any]]:
    project = await tickets.project_of(svc, project_ref)
    async with svc.engine.connect() as conn:
        queues = await ts.queues_of(conn, project["id"])
    return [await describe(svc, q) for q in queues]


async def get(svc: Services, project_ref: str, queue_id: str) -> dict[str, Any]:
    return await describe(svc, (await _load(svc, project_ref, queue_id))[1])


async def _managed(
    svc: Services, principal: Principal, project_ref: str, queue_id: str, what: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The project and queue, when the caller manages the project (owner, members, admins)."""
    project, queue = await _load(svc, project_ref, queue_id)
    ownership.require_project_manager(principal, project, what)
    return project, queue


async def update(
    svc: Services, principal: Principal, project_ref: str, queue_id: str, changes: dict[str, Any]
) -> dict[str, Any]:
    """Rename, reorder or change ``max_parallel``/``land``; the ticket list only while the
    queue is not running."""
    project, queue = await _managed(svc, principal, project_ref, queue_id, "change its queues")
    _check_stack(
        changes.get("land") or queue["land"], changes.get("max_parallel") or queue["max_parallel"]
    )
    if "tickets" in changes:
        if queue["status"] == "running":
            raise Conflict(
                "The queue is running: cancel it (or wait for a pause) before changing its "
                "tickets.",
                current_status=queue["status"],
            )
        changes["tickets"] = list(dict.fromkeys(changes["tickets"] or []))
        await _check_tickets(svc, project, changes["tickets"])
    updated = await svc.writer.run(lambda tx: ts.update_queue(tx, queue_id, changes))
    return await describe(svc, updated)


async def delete(svc: Services, principal: Principal, project_ref: str, queue_id: str) -> None:
    _, queue = await _managed(svc, principal, project_ref, queue_id, "delete its queues")
    if queue["status"] == "running":
        raise Conflict(
            "The queue is running: cancel it first (POST …/queues/{id}/cancel).",
            current_status="running",
        )
    await svc.writer.run(lambda tx: ts.delete_queue(tx, queue_id))


async def start(
    svc: Services, principal: Principal, project_ref: str, queue_id: str
) -> dict[str, Any]:
    """Start, or resume a paused queue (the failed ticket stays failed: retry or skip it)."""
    _, queue = await _managed(svc, principal, project_ref, queue_id, "start its queues")
    if queue["status"] == "done":
        raise Conflict(
            "Every ticket of this queue is settled; release it (POST …/release) to run it again.",
            current_status="done",
        )
    changes = {"status": "running", "paused_reason": None, "created_by": queue["created_by"]}
    if principal.user_id is not None:
        changes["created_by"] = principal.user_id  # runs are the starter's
    await svc.writer.run(lambda tx: ts.update_queue(tx, queue_id, changes))
    await advance(svc, queue_id)
    return await get(svc, project_ref, queue_id)


async def cancel(
    svc: Services, principal: Principal, project_ref: str, queue_id: str
) -> dict[str, Any]:
    """Stop the queue and cancel the runs it has working."""
    _, queue = await _managed(svc, principal, project_ref, queue_id, "cancel its queues")
    async with lock(queue_id):
        await svc.writer.run(
            lambda tx: ts.update_queue(tx, queue_id, {"status": "cancelled", "paused_reason": None})
        )
    for item in queue["items"].values():
        if item.get("state") == RUNNING and item.get("run_id"):
            run = await run_service.get(svc, item["run_id"])
            if RunStatus(run["status"]) in ACTIVE:
                await run_service.cancel(svc, run["id"])
    return await get(svc, project_ref, queue_id)


async def release(
    svc: Services, principal: Principal, project_ref: str, queue_id: str
) -> dict[str, Any]:
    """Reset every item to pending (not while running)."""
    _, queue = await _managed(svc, principal, project_ref, queue_id, "release its queues")
    if queue["status"] == "running":
        raise Conflict("The queue is running: cancel it first.", current_status="running")
    values: dict[str, Any] = {"status": "idle", "items": {}, "paused_reason": None}
    await svc.writer.run(lambda tx: ts.update_queue(tx, queue_id, values))
    return await get(svc, project_ref, queue_id)


async def settle_item(
    svc: Services, principal: Principal, project_ref: str, queue_id: str, number: int, how: str
) -> dict[str, Any]:
    """``retry`` (the ticket runs again) or ``skip`` (its dependents go on) a failed ticket;
    then the queue resumes."""
    await _managed(svc, principal, project_ref, queue_id, f"{how} its queue items")

    async def job(tx: Tx) -> None:  # judged on the row as it is when written
        queue = await ts.find_queue(tx.conn, queue_id)
        if queue is None or number not in queue["tickets"]:
            raise Conflict(f"Ticket #{number} is not in this queue.")
        item = queue["items"].get(str(number), {})
        if (state := item.get("state", PENDING)) != FAILED:
            raise Conflict(
                f"Ticket #{number} is '{state}' in this queue; only a failed ticket can be "
                f"{'retried' if how == 'retry' else 'skipped'}.",
            )
        items = dict(queue["items"])
        items[str(number)] = {**item, "state": PENDING if how == "retry" else SKIPPED}
        values = {"items": items, "status": "running", "paused_reason": None}
        await ts.update_queue(tx, queue_id, values)

    async with lock(queue_id):
        await svc.writer.run(job)
    await advance(svc, queue_id)
    return await get(svc, project_ref, queue_id)
