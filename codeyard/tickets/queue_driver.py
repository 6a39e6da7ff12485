"""Driving work queues: start the tickets a running queue has room for (``advance``), settle
the item a run works when the run changes status (``on_run_changed``: land it, or pause the
queue with the reason), and pick up after a restart (``reconcile``).

Apart from ``queues`` (creating, changing, starting, cancelling them: the routes' side)
because the two meet only at the queue's row and its lock (``queue_locks``): management calls
in here (``advance`` after a start or a retry; ``spent`` and ``tickets_of`` for what it shows),
this module never calls management. The follower (``follower.py``) feeds run status changes in.
"""

from __future__ import annotations

from typing import Any

from codeyard.auth.principal import Principal
from codeyard.auth.scopes import ALL, for_role
from codeyard.domain import events as ev
from codeyard.domain.errors import CodeyardError
from codeyard.domain.status import ACTIVE, RunStatus
from codeyard.services import resolution
from codeyard.services.context import Services
from codeyard.store import projects, runs, users
from codeyard.store.writer import Tx
from codeyard.tickets import agent, domain
from codeyard.tickets import store as ts
from codeyard.tickets.domain import DONE, FAILED, RUNNING
from codeyard.tickets.queue_locks import lock

#: Run statuses that stop a queue's ticket short of landing.
STOPPED = frozenset({"failed", "cancelled", "interrupted", "paused"})
#: The run statuses ``on_run_changed`` acts on (a turn ended, landed or stopped short).
SETTLING = STOPPED | {"review", "completed"}


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
    async with lock(queue_id):
        async with svc.engine.connect() as conn:
            queue = await ts.find_queue(conn, queue_id)
            if queue is None or queue["status"] != "running":
                return
            project = await projects.get_project(conn, queue["project_id"])
            rows = {t["number"]: t for t in await tickets_of(conn, project, queue["tickets"])}
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


async def tickets_of(
    conn: Any, project: dict[str, Any], numbers: list[int]
) -> list[dict[str, Any]]:
    """The tickets ``numbers`` of ``project``, in that order (``advance``; the ETA's kinds)."""
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
        async with lock(candidate["id"]):
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
