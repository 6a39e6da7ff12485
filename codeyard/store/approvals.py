"""The one door for approvals: opening one, answering or expiring it, and the run it holds.

Every status change of an approval goes through :func:`resolve`: it checks the transition
(``pending → approved | rejected | expired``), writes the row, appends the one
``approval.resolved`` shape, recounts the run's ``pending_approvals`` from the table and moves a
run that waited on approvals back to ``running`` when none is left. The executor only wakes the
agent's future; nothing else writes an approval's status or the counter.

Each statement of a writer job is a trip to the driver's thread and back (on SQLite: the
thread's wake-up, then the event loop's), and under load each waits for a core. An answer is
on the path of a waiting agent, so its door takes as few as it can (issue 15): the answer is
one conditional ``UPDATE … RETURNING`` (the pending row answered, or nothing: then the row is
read to say why), and the run is read with its count of pending approvals in one statement
(:func:`recount`, :func:`open_approval`). An answer costs four trips with its commit (six before).

``used_by`` names the call waiting on an approval from the moment it waits (written when the
approval opens, or when a resumed agent's call binds to it), and ``used_at`` is set once the
answer reached that call. An answer given while its call waits in this process marks it used in
the same statement (``resolve(used=True)``): the agent is woken by that commit, and no second
commit follows to mark it (:func:`unuse` undoes it if the call stopped waiting meanwhile).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from codeyard.domain.approvals import PENDING, TRANSITIONS, check_transition
from codeyard.domain.errors import NotFound
from codeyard.domain.events import utc_now
from codeyard.domain.status import RunStatus
from codeyard.store import events, policies, runs, schema
from codeyard.store.statement import RowWrites, Statement
from codeyard.store.writer import Tx

AP = schema.approvals
#: The hot statements on approvals, sent without Core's work per execution (``store.statement``).
_WRITES = RowWrites(AP)
_PENDING: Statement[tuple[int]] = Statement(
    select(func.count())
    .select_from(AP)
    .where(AP.c.run_id == bindparam("run_id"), AP.c.status == PENDING)
)
#: An answer in one statement: the row, if it was still pending, as it is after the answer.
_ANSWER: Statement[tuple[Any, ...]] = Statement(
    update(AP)
    .where(AP.c.id == bindparam("approval_id"), AP.c.status == PENDING)
    .values(
        status=bindparam("to"),
        decided_by=bindparam("decided_by"),
        reason=bindparam("reason"),
        resolved_at=bindparam("resolved_at"),
        remember=func.coalesce(bindparam("remember"), AP.c.remember),
        used_at=bindparam("used_at"),
    )
    .returning(*AP.c)
)
#: A run's row (``runs.lock``) with its pending approvals counted, in one trip.
_PENDING_NOW = "pending_now"
_RUN_AND_PENDING: Statement[tuple[Any, ...]] = Statement(
    select(
        schema.runs,
        select(func.count())
        .select_from(AP)
        .where(AP.c.run_id == schema.runs.c.id, AP.c.status == PENDING)
        .scalar_subquery()
        .label(_PENDING_NOW),
    ).where(schema.runs.c.id == bindparam("run_id"))
)
_RUN_OF: Statement[tuple[str]] = Statement(
    select(AP.c.run_id).where(AP.c.id == bindparam("approval_id"))
)
_BINDABLE: Statement[tuple[Any, ...]] = Statement(
    select(AP)
    .where(
        AP.c.run_id == bindparam("run_id"),
        AP.c.fingerprint == bindparam("fingerprint"),
        AP.c.used_at.is_(None),
        or_(AP.c.status == PENDING, AP.c.status == "approved", AP.c.status == "rejected"),
    )
    .order_by(AP.c.created_at, AP.c.id)
    .limit(1)
)
_MARK_USED: Statement[tuple[()]] = Statement(
    update(AP)
    .where(AP.c.id == bindparam("approval_id"))
    .values(used_at=bindparam("used_at"), used_by=bindparam("used_by"))
)
_MARK_USED_IF_ANSWERED: Statement[tuple[()]] = Statement(
    update(AP)
    .where(AP.c.id == bindparam("approval_id"), AP.c.status != PENDING)
    .values(used_at=bindparam("used_at"), used_by=bindparam("used_by"))
)
#: The run's ``status_reason`` while its agent waits for an operator's message, not approvals.
QUESTION = "question"

PUBLIC_KEYS = (
    "id",
    "run_id",
    "call_id",
    "tool",
    "kind",
    "input",
    "title",
    "rule",
    "status",
    "decided_by",
    "reason",
    "remember",
    "created_at",
    "resolved_at",
    "expires_at",
)


def public(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row.get(k) for k in PUBLIC_KEYS}


async def _pending(tx: Tx, run_id: str) -> int:
    """The run's pending approvals, counted in the table."""
    return int(await _PENDING.scalar(tx.conn, run_id=run_id))


async def _run_and_pending(tx: Tx, run_id: str) -> tuple[dict[str, Any], int]:
    """The run as ``runs.lock`` reads it, and its pending approvals counted in the table: one
    statement."""
    row = await _RUN_AND_PENDING.first_mapping(tx.conn, run_id=run_id)
    if row is None:
        raise NotFound(f"No run '{run_id}'.")
    pending = int(row.pop(_PENDING_NOW))
    return row, pending


async def recount(tx: Tx, run_id: str, locked: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write the run's ``pending_approvals`` from the table; ``waiting → running`` at zero.
    ``locked``: the run as this job read it (``runs.lock``), not read again."""
    if locked is None:
        run, pending = await _run_and_pending(tx, run_id)
    else:
        run, pending = locked, await _pending(tx, run_id)
    waiting = run["status"] == RunStatus.WAITING and run["status_reason"] != QUESTION
    if waiting and pending == 0:
        return await runs.set_status(
            tx, run_id, RunStatus.RUNNING, None, locked=run, pending_approvals=0
        )
    if run["pending_approvals"] != pending:
        await runs.update_fields(tx, run_id, pending_approvals=pending)
        run["pending_approvals"] = pending
    return run


async def open_approval(
    tx: Tx, approval: dict[str, Any], *, gate: bool, status_reason: str
) -> dict[str, Any]:
    """Insert a pending approval, announce it, and show its run as ``waiting``; returns the
    run as it is then."""
    run_id = approval["run_id"]
    run, pending = await _run_and_pending(tx, run_id)  # counted before this one is inserted
    await policies.insert_approval(tx, approval)
    await tx.emit_one(
        run_id,
        "approval.requested",
        {
            "approval": public(approval),
            "gate": gate,
            "run_title": run["title"],
            "run_number": run["number"],
        },
    )
    return await hold(tx, run_id, status_reason, run, pending=pending + 1)


async def hold(
    tx: Tx,
    run_id: str,
    status_reason: str,
    locked: dict[str, Any] | None = None,
    *,
    pending: int | None = None,
) -> dict[str, Any]:
    """The agent waits on a pending approval: ``running → waiting`` and the count recounted;
    returns the run as it is then (``locked``: as this job read it, not read again;
    ``pending``: its pending approvals as this job counted them, not counted again)."""
    if locked is None:
        run, pending = await _run_and_pending(tx, run_id)
    else:
        run = locked
    if run["status"] == RunStatus.RUNNING:  # the count written with the status: one write
        if pending is None:
            pending = await _pending(tx, run_id)
        return await runs.set_status(
            tx, run_id, RunStatus.WAITING, status_reason, locked=run, pending_approvals=pending
        )
    run = await recount(tx, run_id, run)
    if run["status"] == RunStatus.RUNNING:
        pending = run["pending_approvals"]
        run = await runs.set_status(
            tx, run_id, RunStatus.WAITING, status_reason, locked=run, pending_approvals=pending
        )
    return run


async def resolve(
    tx: Tx,
    approval_id: str,
    to: str,
    *,
    decided_by: str | None,
    reason: str | None,
    remember: str | None = None,
    remembered_policy_id: str | None = None,
    read: dict[str, Any] | None = None,
    used: bool = False,
) -> dict[str, Any]:
    """The one door for an approval's status (see the module doc); returns the new row.
    ``read``: the approval's row as this same job read it, not read again. Without it, a
    pending approval is answered in one statement, which reads nothing first (the writer is
    serialized: no other write comes between); only one that is not pending is read, to
    refuse the move naming its status (409), or to say there is none (404). ``used``: the
    call waiting on it (``used_by``) takes the answer as this commits (see the module doc)."""
    changes: dict[str, Any] = {
        "status": to,
        "decided_by": decided_by,
        "reason": reason,
        "resolved_at": utc_now(),
    }
    if remember is not None:
        changes["remember"] = remember
    if used:
        changes["used_at"] = changes["resolved_at"]
    row: dict[str, Any] | None = None
    if read is None and to in TRANSITIONS[PENDING]:
        row = await _ANSWER.first_mapping(
            tx.conn,
            approval_id=approval_id,
            to=to,
            decided_by=decided_by,
            reason=reason,
            resolved_at=changes["resolved_at"],
            remember=remember,
            used_at=changes.get("used_at"),
        )
    if row is None:
        row = read if read is not None else await policies.get_approval(tx.conn, approval_id)
        check_transition(approval_id, row["status"], to)
        await _WRITES.update(tx.conn, approval_id, changes)
    await tx.emit_one(
        row["run_id"],
        "approval.resolved",
        {
            "approval_id": approval_id,
            "decision": to,
            "decided_by": decided_by,
            "reason": reason,
            "remembered_policy_id": remembered_policy_id,
        },
    )
    await recount(tx, row["run_id"])
    return {**row, **changes}


async def run_of(conn: AsyncConnection, approval_id: str) -> str:
    """The run an approval belongs to (it never changes); ``NotFound`` if there is none."""
    found = await _RUN_OF.first(conn, approval_id=approval_id)
    if found is None:
        return str((await policies.get_approval(conn, approval_id))["run_id"])  # raises
    return str(found[0])


async def bindable(conn: AsyncConnection, run_id: str, fingerprint: str) -> dict[str, Any] | None:
    """The oldest approval of this run for the same call whose answer no agent has used yet
    (pending, or answered while no agent was there to hear it)."""
    return await _BINDABLE.first_mapping(conn, run_id=run_id, fingerprint=fingerprint)


async def waits(tx: Tx, approval_id: str, call_id: str) -> None:
    """The call ``call_id`` waits on this pending approval (a resumed agent's call bound to
    it): the one an answer given meanwhile is marked used by (``resolve(used=True)``)."""
    await _WRITES.update(tx.conn, approval_id, {"used_by": call_id})


async def unuse(tx: Tx, approval_id: str) -> None:
    """An answer marked used as it committed did not reach its call (the call stopped waiting
    meanwhile): the identical call of the resumed agent takes it, as after a crash
    (:func:`release_unfinished`)."""
    await _WRITES.update(tx.conn, approval_id, {"used_at": None})


async def mark_used(tx: Tx, approval_id: str, call_id: str) -> None:
    """The answer reached the agent's call ``call_id``: it is not handed to another call."""
    await _MARK_USED.run(tx.conn, approval_id=approval_id, used_at=utc_now(), used_by=call_id)


async def mark_used_if_answered(tx: Tx, approval_id: str, call_id: str) -> bool:
    """:func:`mark_used` for an approval already answered through :func:`resolve` (the usual
    case: no read first); False, and nothing written, while it is still pending."""
    matched = await _MARK_USED_IF_ANSWERED.run(
        tx.conn, approval_id=approval_id, used_at=utc_now(), used_by=call_id
    )
    return matched == 1


async def release_unfinished(tx: Tx, run_id: str) -> int:
    """After the server went away: answers handed to calls that never got a result (the call
    was cut off) are handed out again to the resumed agent's identical call, not asked twice."""
    used = (
        await tx.conn.execute(
            select(AP.c.id, AP.c.used_by).where(
                AP.c.run_id == run_id, AP.c.used_at.is_not(None), AP.c.used_by.is_not(None)
            )
        )
    ).all()
    if not used:
        return 0
    finished = await events.result_call_ids(tx.conn, run_id)
    again = [row.id for row in used if row.used_by not in finished]
    if again:
        await tx.conn.execute(
            update(AP).where(AP.c.id.in_(again)).values(used_at=None, used_by=None)
        )
    return len(again)


async def expire_pending_of_run(tx: Tx, run_id: str, why: str) -> None:
    """Expire what the run's agent asked (its agent is gone for good: cancel, pause)."""
    for row in await policies.pending_of_run(tx.conn, run_id):
        await resolve(tx, row["id"], "expired", decided_by=None, reason=why)
    await recount(tx, run_id)
