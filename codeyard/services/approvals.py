"""Answering approvals, trusting runs, and what an operator remembers from an answer."""

from __future__ import annotations

import contextlib
from typing import Any

from codeyard.agents import timing
from codeyard.domain import events as ev
from codeyard.domain.approvals import check_transition, remembered_rule
from codeyard.domain.errors import Conflict
from codeyard.domain.events import utc_now
from codeyard.domain.ids import new_id
from codeyard.domain.tools import ToolRequest
from codeyard.executor.interface import ApprovalAnswer
from codeyard.services.context import Services
from codeyard.store import approvals as approval_door
from codeyard.store import policies, projects, runs
from codeyard.store.records import ApprovalRecord
from codeyard.store.writer import Tx


async def list_approvals(
    svc: Services, *, status: str | None, run_id: str | None, limit: int, cursor: str | None
) -> tuple[list[ApprovalRecord], str | None]:
    async with svc.engine.connect() as conn:
        if run_id:
            run_id = (await runs.get_record(conn, run_id)).id
        return await policies.list_approvals(
            conn, status=status, run_id=run_id, limit=limit, cursor=cursor
        )


async def _remember(tx: Tx, approval: dict[str, Any], scope: str) -> str:
    """Add an allow rule for this exact call, for the run or for the whole project."""
    request = ToolRequest(
        approval["call_id"], approval["tool"], approval["kind"], approval["input"]
    )
    rule = remembered_rule(request)
    run = await runs.lock(tx, approval["run_id"])
    now = utc_now()
    policy_id = new_id("pol")
    values = {
        "id": policy_id,
        "enabled": True,
        "priority": 1000,
        "rules": [rule],
        "created_at": now,
        "updated_at": now,
        "name": f"Remembered for run {run['number']}: {approval['title']}"[:200],
        "scope_run_id": run["id"] if scope == "run" else None,
    }
    if scope == "project":
        values["name"] = f"Remembered for the project: {approval['title']}"[:200]
    await policies.insert_policy(tx, values)
    if scope == "project":
        project = await projects.get_project(tx.conn, run["project_id"])
        set_id = new_id("pset")
        await policies.insert_set(
            tx,
            {
                "id": set_id,
                "name": f"Remembered for {project['name']}",
                "policy_ids": [policy_id],
                "created_at": now,
                "updated_at": now,
            },
        )
        ids = [*(project.get("policy_set_ids") or []), set_id]
        await projects.update_project(tx, project["id"], {"policy_set_ids": ids})
    return policy_id


async def resolve(
    svc: Services,
    approval_id: str,
    decision: str,
    reason: str | None,
    remember: str | None,
    decided_by: str = "operator",
) -> dict[str, Any]:
    """Record the answer through the approvals door (409 if already answered) and wake the
    agent that waits for it; with no agent waiting (the run is interrupted or not resumed
    yet) the answer waits for the resumed agent's identical call.

    Someone waits on this write (the agent, the operator): it is urgent for its run in the
    writer (``Writer.run``), which commits it ahead of other runs' queued writes. An agent
    waiting in this process is woken by the commit itself (``Tx.after_commit``), not after
    this task is scheduled again; one elsewhere gets the answer through ``signal``."""
    # The request authenticated, its write about to wait its turn (bench/agents_scale.py).
    timing.mark_of(approval_id, "resolve received")
    run_id = svc.executor.waiting_on(approval_id)
    waits_here = run_id is not None
    if run_id is None:  # no agent waits on it here: its run from its row
        async with svc.engine.connect() as conn:
            run_id = await approval_door.run_of(conn, approval_id)
    answer = {"decision": decision, "reason": reason, "decided_by": decided_by}
    # An agent waiting here takes the answer as it commits: marked used in the same statement
    # (``used``), so the agent's gate writes nothing more (one commit per answer, not two).
    given = {**answer, "used": True} if waits_here else answer
    signal = ApprovalAnswer(approval_id=approval_id, answer=given)
    delivered: list[bool] = []

    async def job(tx: Tx) -> dict[str, Any]:
        # Only a remembered answer reads the approval first (its rule is made from the call);
        # otherwise the door answers it in one statement, or says why not (409, 404).
        row: dict[str, Any] | None = None
        rule_id: str | None = None
        if remember and decision == "approved":
            row = await policies.get_approval(tx.conn, approval_id)
            check_transition(approval_id, row["status"], decision)
            rule_id = await _remember(tx, row, remember)
        resolved = await approval_door.resolve(
            tx,
            approval_id,
            decision,
            decided_by=decided_by,
            reason=reason,
            remember=remember,
            remembered_policy_id=rule_id,
            read=row,
            used=waits_here,
        )
        tx.after_commit(lambda: delivered.append(svc.executor.deliver_now(run_id, signal)))
        return resolved

    row = await svc.writer.run(job, urgent_for=run_id)
    if not any(delivered):
        if waits_here:  # it stopped waiting meanwhile: the answer is not used yet
            await svc.writer.run(lambda tx: approval_door.unuse(tx, approval_id), urgent_for=run_id)
            signal = ApprovalAnswer(approval_id=approval_id, answer=answer)
        await svc.executor.signal(run_id, signal)
    return approval_door.public(row)


async def trust(svc: Services, ref: str) -> dict[str, Any]:
    """Auto-approve this run's asks from now on, and the ones pending (hard gates still ask)."""
    async with svc.engine.connect() as conn:
        run = await runs.get(conn, ref)

    async def job(tx: Tx) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        # The approvals pending when the run becomes trusted, read with that write: one asked
        # before it is answered below, one asked after it sees the trust (``executor.approvals``).
        pending = await policies.pending_of_run(tx.conn, run["id"])
        await runs.update_fields(tx, run["id"], trusted=True)
        await tx.emit_one(run["id"], ev.RunTrusted(by="operator"))
        return await runs.lock(tx, run["id"]), pending

    updated, pending = await svc.writer.run(job)
    for row in pending:
        if not (row.get("rule") or "").startswith("gate:"):
            with contextlib.suppress(Conflict):  # answered meanwhile
                await resolve(
                    svc, row["id"], "approved", "run is trusted", None, decided_by="trust"
                )
    return runs.public(updated)
