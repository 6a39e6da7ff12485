"""Work queues: tickets run one after another (or ``max_parallel`` at a time), each landed
before the next starts, so the next ticket's run starts from the previous one's merged result.
With ``land = stack`` nothing is merged: each ticket's run starts from the previous ticket's
branch and opens a pull request based on that branch (stacked PRs), one ticket at a time.

A failed, cancelled, interrupted or budget-stopped run, or a landing that conflicts, pauses the
queue with the reason (``queue.paused`` on that run). ``start`` resumes; ``retry`` and ``skip``
settle the failed ticket and resume. The follower (``follower.py``) feeds run status changes in;
the queue's rows are the state, so a restart picks up where it was (``reconcile``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from datetime import datetime
from typing import Any

from codeyard.auth.principal import Principal
from codeyard.auth.scopes import ALL, for_role
from codeyard.domain import events as ev
from codeyard.domain.errors import CodeyardError, Conflict, ValidationFailed
from codeyard.domain.events import utc_now
from codeyard.domain.ids import new_id
from codeyard.domain.status import ACTIVE, RunStatus
from codeyard.services import ownership, resolution
from codeyard.services import runs as run_service
from codeyard.services.context import Services
from codeyard.store import projects, runs, users
from codeyard.store.writer import Tx
from codeyard.tickets import agent, domain
from codeyard.tickets import service as tickets
from codeyard.tickets import store as ts
from codeyard.tickets.domain import DONE, FAILED, PENDING, RUNNING, SKIPPED

log = logging.getLogger(__name__)
#: One advance at a time per queue (the follower and the routes both advance).
_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
#: Run statuses that stop a queue's ticket short of landing.
STOPPED = frozenset({"failed", "cancelled", "interrupted", "paused"})
#: The run statuses ``on_run_changed`` acts on (a turn ended, landed or stopped short).
SETTLING = STOPPED | {"review", "completed"}


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


def _cost(run: dict[str, Any] | None) -> float:
    return float(((run or {}).get("usage") or {}).get("cost_usd") or 0.0)


async def spent(svc: Services, queue: dict[str, Any]) -> float:
    """What the queue's runs spent: settled items' runs (recorded when they settled, retries
    included) and the runs working now."""
    total = sum(float(item.get("spent_usd") or 0.0) for item in queue["items"].values())
    working = [
        item["run_id"]
        for item in queue["items"].values()
        if item.get("state") == RUNNING and item.get("run_id")
    ]
    async with svc.engine.connect() as conn:
        for run_id in working:
            total += _cost(await runs.find(conn, run_id))
    return round(total, 8)


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
        kinds = [t["kind"] for t in await _tickets_of(conn, project, left)]
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
    async with _locks[queue_id]:
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

    async with _locks[queue_id]:
        await svc.writer.run(job)
    await advance(svc, queue_id)
    return await get(svc, project_ref, queue_id)


# --- driving ----------------------------------------------------------------------------------


async def _runner(svc: Services, queue: dict[str, Any]) -> Principal:
    """Who the queue's runs belong to: the user who started it (the admin token: admin)."""
    user_id = queue["created_by"]
    if user_id is None:
        return Principal(kind="queue", name=f"queue {queue['id']}", scopes=ALL)
    async with svc.engine.connect() as conn:
        user = await users.find(conn, user_id)
    role = user["role"] if user else "viewer"
    return Principal(
        kind="queue", name=f"queue {queue['id']}", scopes=for_role(role), user_id=user_id, role=role
    )


async def _source_ref(svc: Services, project_id: str) -> str:
    """The repositories' default branch (where the previous ticket landed), else ``HEAD``."""
    async with svc.engine.connect() as conn:
        branches = {r["default_branch"] for r in await projects.repos_of(conn, project_id)}
    return branches.pop() if len(branches) == 1 and None not in branches else "HEAD"


def stack_base(queue: dict[str, Any], before: int) -> str | None:
    """The branch a stacked ticket builds on: that of the last done ticket ahead of ``before``
    in the queue's order; None: the default branch (the first ticket of the stack)."""
    order = queue["tickets"]
    ahead = order[: order.index(before)] if before in order else []
    for number in reversed(ahead):
        item = queue["items"].get(str(number), {})
        if item.get("state") == DONE and item.get("branch"):
            return str(item["branch"])
    return None


async def _set_item(svc: Services, queue_id: str, number: int, **item: Any) -> dict[str, Any]:
    async def job(tx: Tx) -> dict[str, Any]:
        queue = await ts.find_queue(tx.conn, queue_id)
        assert queue is not None
        items = dict(queue["items"])
        items[str(number)] = {**items.get(str(number), {}), **item}
        return await ts.update_queue(tx, queue_id, {"items": items})

    return await svc.writer.run(job)


async def _pause(
    svc: Services, queue_id: str, number: int, run_id: str | None, reason: str
) -> None:
    async def job(tx: Tx) -> None:
        await ts.update_queue(tx, queue_id, {"status": "paused", "paused_reason": reason})
        if run_id is not None:
            await tx.emit_one(
                run_id, ev.QueuePaused(queue_id=queue_id, ticket=number, reason=reason)
            )

    await svc.writer.run(job)


async def advance(svc: Services, queue_id: str) -> None:
    """Start every eligible ticket the queue has room for, or mark the queue done."""
    async with _locks[queue_id]:
        async with svc.engine.connect() as conn:
            queue = await ts.find_queue(conn, queue_id)
            if queue is None or queue["status"] != "running":
                return
            project = await projects.get_project(conn, queue["project_id"])
            rows = {t["number"]: t for t in await _tickets_of(conn, project, queue["tickets"])}
        blockers = {str(n): [str(b) for b in t["blocked_by"]] for n, t in rows.items()}
        status = {str(n): t["status"] for n, t in rows.items()}
        order = [str(n) for n in queue["tickets"]]
        step = domain.next_step(order, queue["items"], blockers, status, queue["max_parallel"])
        if step.finished:
            await svc.writer.run(lambda tx: ts.update_queue(tx, queue_id, {"status": "done"}))
            return
        options: dict[str, Any] = {"source_ref": await _source_ref(svc, project["id"])}
        left = domain.budget_left(queue["budget_usd"], await spent(svc, queue))
        if left is not None and step.start:
            if left <= 0:
                why = (
                    f"the queue's budget of ${queue['budget_usd']:g} is spent; raise it with "
                    'PATCH …/queues/{id} {"budget_usd": …} and start it again'
                )
                first = int(step.start[0])
                await _pause(svc, queue_id, first, rows[first]["current_run_id"], why)
                return
            options["budget_usd"] = round(left / len(step.start), 6)  # each run's share
        principal = await _runner(svc, queue)
        for key in step.start:
            ticket = rows[int(key)]
            base = stack_base(queue, int(key)) if queue["land"] == "stack" else None
            ticket_options = {**options, "source_ref": base} if base else options
            try:
                run = await agent.start_run(
                    svc, principal, project, ticket, ticket_options, queue_id=queue_id
                )
            except CodeyardError as exc:
                await _set_item(svc, queue_id, int(key), state=FAILED, reason=exc.detail)
                why = f"ticket #{key} could not start: {exc.detail}"
                await _pause(svc, queue_id, int(key), ticket["current_run_id"], why)
                return
            await _set_item(svc, queue_id, int(key), state=RUNNING, run_id=run["id"], reason=None)


async def _tickets_of(
    conn: Any, project: dict[str, Any], numbers: list[int]
) -> list[dict[str, Any]]:
    return [await ts.get_ticket(conn, project, n) for n in numbers]


async def on_run_changed(svc: Services, run: dict[str, Any]) -> None:
    """A run of a queue item changed status: land it, or pause the queue with the reason."""
    if run["status"] not in SETTLING:  # queued, preparing, running…: no query needed
        return
    async with svc.engine.connect() as conn:
        candidates = [
            q for q in await ts.running_queues(conn) if q["project_id"] == run["project_id"]
        ]
    for candidate in candidates:
        # Under the queue's lock, read again: ``advance`` records a started item's run after
        # creating it, and a quick run can settle before that; waiting for the lock sees it.
        async with _locks[candidate["id"]]:
            async with svc.engine.connect() as conn:
                queue = await ts.find_queue(conn, candidate["id"])
            if queue is None or queue["status"] != "running":
                continue
            moved = await _settle_run(svc, queue, run)
        if moved:
            await advance(svc, queue["id"])


async def _settle_run(svc: Services, queue: dict[str, Any], run: dict[str, Any]) -> bool:
    """Settle the queue item ``run`` works (the caller holds the queue's lock): land it, or
    pause the queue with the reason. True when the item is done and the queue may advance."""
    hit = [
        int(k)
        for k, item in queue["items"].items()
        if item.get("run_id") == run["id"] and item.get("state") == RUNNING
    ]
    if not hit:
        return False
    number, status = hit[0], run["status"]
    label = f"ticket #{number} (run {run['number']})"
    # Settling the item records what its run spent (a retry's run adds to it).
    paid = float(queue["items"][str(number)].get("spent_usd") or 0.0) + _cost(run)
    why: str | None = None  # the queue's pause reason; None: the item is done
    reason: str | None = None  # the item's, when it differs from ``why``
    if status == "review":
        action: dict[str, Any] = {"action": queue["land"]}
        if queue["land"] == "stack":
            action = {"action": "create_pr", "target_branch": stack_base(queue, number)}
        try:
            landed = await resolution.resolve(svc, run["id"], action, await _runner(svc, queue))
        except CodeyardError as exc:
            why, reason = f"landing {label} failed: {exc.detail}", exc.detail
        else:
            await agent.sync_ticket(svc, landed)
    elif status == "completed":
        if run.get("resolution") != ("pr_created" if queue["land"] == "stack" else "merged"):
            why = f"{label} was {run.get('resolution') or 'closed'} instead of landed"
    elif status in STOPPED:
        detail = run.get("status_reason") or "no reason given"
        why = f"{label} is '{status}': {detail}. Retry or skip the ticket to go on."
    else:
        return False
    if why is None:
        await _set_item(svc, queue["id"], number, state=DONE, spent_usd=paid, branch=run["branch"])
        return True
    await _set_item(svc, queue["id"], number, state=FAILED, reason=reason or why, spent_usd=paid)
    await _pause(svc, queue["id"], number, run["id"], why)
    return False


async def reconcile(svc: Services) -> None:
    """After a restart: feed each running item's current run status in, then advance."""
    async with svc.engine.connect() as conn:
        queues = await ts.running_queues(conn)
    for queue in queues:
        for item in queue["items"].values():
            if item.get("state") == RUNNING and item.get("run_id"):
                async with svc.engine.connect() as conn:
                    run = await runs.find(conn, item["run_id"])
                if run is not None and RunStatus(run["status"]) not in ACTIVE:
                    await on_run_changed(svc, run)
        await advance(svc, queue["id"])
