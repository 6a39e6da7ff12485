"""The one decision path for every tool call of every provider, with durable approvals.

``decide`` evaluates the policy engine, records the decision (event + audit row), and for an
``ask`` creates a durable approval, moves the run to ``waiting`` and waits for the operator.
The answer goes back to the adapter as a Decision, which each provider carries to its agent
through its own channel. An approval that expires interrupts the turn instead of denying.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from codeyard.agents import timing
from codeyard.domain import events as ev
from codeyard.domain.approvals import fingerprint
from codeyard.domain.events import utc_now
from codeyard.domain.ids import new_id
from codeyard.domain.policy import PolicyContext, PolicyDecision, evaluate
from codeyard.domain.status import RunStatus
from codeyard.domain.tools import Decision, ToolRequest
from codeyard.executor.handle import RunHandle
from codeyard.policy import budget
from codeyard.policy import context as policy_context
from codeyard.store import approvals as approval_door
from codeyard.store import policies, runs
from codeyard.store import settings as settings_store
from codeyard.store.writer import Tx, Writer

S = RunStatus
DEFAULT_TIMEOUT_HOURS = 10.0

log = logging.getLogger(__name__)


class TurnStopped(Exception):
    """The turn must stop here (the run becomes ``interrupted``), not deny and go on."""


class ApprovalExpired(TurnStopped):
    """Nobody answered in time: the agent would only retry, so the turn stops instead."""


class BudgetRefused(TurnStopped):
    """The operator chose not to raise a crossed spending cap."""


def summarize(request: ToolRequest, limit: int = 160) -> str:
    """A one-line title a phone can show: the command, or the tool and its path."""
    data = request.input
    text = data.get("command") or data.get("cmd")
    if not text:
        path = data.get("path") or data.get("file_path") or data.get("notebook_path")
        text = f"{request.tool} {path}" if path else request.tool
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _record(
    run_id: str, request: ToolRequest, verdict: PolicyDecision
) -> Callable[[Tx], Awaitable[None]]:
    """The job recording a decision (its audit row and ``policy.decision``): alone for an
    allow or a deny, first in the job that opens the approval for an ask (one transaction
    fewer per asked call; the event still comes before ``approval.requested``)."""

    async def job(tx: Tx) -> None:
        await policies.insert_decision(
            tx,
            {
                "run_id": run_id,
                "call_id": request.call_id,
                "tool": request.tool,
                "decision": verdict.action,
                "rule": verdict.rule,
                "reason": verdict.reason,
                "created_at": utc_now(),
            },
        )
        decided = ev.PolicyDecision(
            call_id=request.call_id,
            tool=request.tool,
            decision=verdict.action,
            rule=verdict.rule,
            reason=verdict.reason,
            gate=verdict.gate,
        )
        await tx.emit_one(run_id, decided)

    return job


class ApprovalGate:
    def __init__(self, engine: AsyncEngine, writer: Writer, default_mode: str) -> None:
        self._engine = engine
        self._writer = writer
        self._default_mode = default_mode
        #: The data directory and worktree root: the read gate's roots (``contain_with``).
        self.private: tuple[str, ...] = ()

    def _verdict(self, ctx: PolicyContext, request: ToolRequest) -> PolicyDecision:
        if request.hints.get("deny"):  # a script step marked "deny": true (tests and demos)
            return PolicyDecision("deny", "scenario:deny", "the scenario marks this step as denied")
        return evaluate(request, ctx)

    async def _context(self, conn: AsyncConnection, run: dict[str, Any]) -> PolicyContext:
        return await policy_context.build(conn, run, self._default_mode, self.private)

    async def decide(self, handle: RunHandle, request: ToolRequest) -> Decision:
        run_id = handle.run_id
        await _settled(handle)
        # One read of the run per decision, kept on the handle for the questions below: one
        # statement, so the engine (no transaction to end; on SQLite, no trip to a driver
        # thread). The budget and the policy context, mostly kept copies, read after it.
        ctx: PolicyContext | None = None
        run = dict(handle.observe(await runs.get(self._engine, run_id)).row)
        async with self._engine.connect() as conn:
            over = await budget.check(conn, run)
            if over is None:
                ctx = await self._context(conn, run)
        if ctx is None:  # a crossed cap: the context is read once the operator raised it
            assert over is not None
            await self._wait_for_budget(handle, run, request, over)
            async with self._engine.connect() as conn:
                ctx = await self._context(conn, run)
        verdict = self._verdict(ctx, request)
        record = _record(run_id, request, verdict)
        if verdict.action == "ask":  # recorded by the job that opens the approval
            return await self._ask(handle, request, verdict, record)
        # The agent waits on it: ahead of other runs' queued writes (``Writer.run``).
        await self._writer.run(record, urgent_for=run_id)
        if verdict.action == "allow":
            return Decision(True, verdict.reason, verdict.rule)
        return Decision(False, verdict.reason, verdict.rule)

    async def _timeout_seconds(self) -> float:
        stored = await settings_store.read(self._engine)
        hours = stored.get("approval_timeout_hours") or DEFAULT_TIMEOUT_HOURS
        return float(hours) * 3600

    async def _ask(
        self,
        handle: RunHandle,
        request: ToolRequest,
        verdict: PolicyDecision,
        record: Callable[[Tx], Awaitable[None]],
    ) -> Decision:
        fields = {
            "call_id": request.call_id,
            "tool": request.tool,
            "kind": request.kind,
            "input": request.input,
            "title": summarize(request),
            "rule": verdict.rule,
            "reason": verdict.reason,
        }
        answer = await self._wait_for_answer(
            handle, fields, "approval", gate=verdict.gate, first=record
        )
        reason = answer.get("reason")
        if answer["decision"] == "approved":
            return Decision(True, reason or "approved by the operator", verdict.rule)
        return Decision(False, reason or "rejected by the operator", verdict.rule)

    async def _wait_for_budget(
        self, handle: RunHandle, run: dict[str, Any], request: ToolRequest, over: budget.Overrun
    ) -> None:
        """Stop at a crossed cap until the operator raises it; a refusal interrupts the turn."""
        fields = {
            "call_id": request.call_id,
            "tool": "budget",
            "kind": "budget",
            "input": {
                "cap": over.cap,
                "limit_usd": over.limit,
                "spent_usd": over.spent,
                "period": over.period,
            },
            "title": over.title,
            "rule": f"budget:{over.cap}",
            "reason": f"{over.cap} budget reached",
        }
        answer = await self._wait_for_answer(handle, fields, "budget", gate=True)
        if answer["decision"] != "approved":
            raise BudgetRefused(f"Stopped at the {over.cap} budget of ${over.limit:.2f}.")

        async def raise_cap(tx: Tx) -> None:
            current = await runs.lock(tx, handle.run_id)
            await runs.update_fields(tx, handle.run_id, **budget.raised(current, over))

        await self._writer.run(raise_cap)

    async def _wait_for_answer(
        self,
        handle: RunHandle,
        fields: dict[str, Any],
        status_reason: str,
        *,
        gate: bool,
        first: Callable[[Tx], Awaitable[None]] | None = None,
    ) -> dict[str, Any]:
        """Wait for the operator's answer to this call: bound to the approval the run already
        has for the same call (asked before a restart: answered → at once, pending → wait on
        it), or a new durable approval. The run shows ``waiting`` meanwhile. ``first``: a job
        run at the start of the one that binds or opens the approval (the decision's record),
        in its transaction."""
        run_id = handle.run_id
        timeout = await self._timeout_seconds()
        fp = fingerprint(str(fields["tool"]), dict(fields["input"]))
        call_id = str(fields["call_id"])
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        expires = datetime.now(UTC) + timedelta(seconds=timeout)
        new = {
            "id": new_id("apr"),
            "run_id": run_id,
            **fields,
            "status": "pending",
            "decided_by": None,
            "remember": None,
            "created_at": utc_now(),
            "resolved_at": None,
            "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "fingerprint": fp,
            "used_at": None,
            "used_by": call_id,  # the call waiting on it (``store.approvals``)
        }

        async def ask(tx: Tx) -> tuple[dict[str, Any], bool]:
            """The approval bound (or opened) and whether the run is trusted, in one job: the
            binding, the opening and the run's trust are read where they are written."""
            if first is not None:
                await first(tx)
            bound = await approval_door.bindable(tx.conn, run_id, fp)
            if bound is not None and bound["status"] != "pending":  # answered: used at once
                await approval_door.mark_used(tx, bound["id"], call_id)
                return bound, False
            # Before the commit: an answer given right after it finds the agent waiting.
            waits_on.append(str((bound or new)["id"]))
            handle.approvals[waits_on[-1]] = future
            if bound is not None:
                await approval_door.waits(tx, str(bound["id"]), call_id)
                return bound, bool((await approval_door.hold(tx, run_id, status_reason))["trusted"])
            run = await approval_door.open_approval(tx, new, gate=gate, status_reason=status_reason)
            return new, bool(run["trusted"])

        waits_on: list[str] = []
        try:
            # The agent, then the operator, wait on it: ahead of other runs' queued writes.
            approval, trusted = await self._writer.run(ask, urgent_for=run_id)
        except BaseException:
            for approval_id in waits_on:
                handle.approvals.pop(approval_id, None)
            raise
        approval_id = str(approval["id"])
        if approval["status"] != "pending":
            return {
                "decision": approval["status"],
                "reason": approval["reason"],
                "decided_by": approval["decided_by"],
            }
        if approval_id != new["id"]:  # bound: asked before a restart
            timeout = _seconds_left(approval["expires_at"], timeout)
        try:
            # Trust given before this was written applies at once (never to gates); trust
            # given after it answers the approval (``services.approvals.trust``).
            if trusted and not gate and not future.done():
                future.set_result(
                    {"decision": "approved", "decided_by": "trust", "reason": "run is trusted"}
                )
            try:
                # Awaited directly, not through ``wait_for``/``shield``: each of those adds a
                # turn of the event loop between the answer and this task (under load, each
                # waits behind every ready callback). The future is this call's alone.
                async with asyncio.timeout(timeout):
                    answer = await future
                timing.mark(f"approval answered {call_id}")
            except TimeoutError:
                await self._writer.run(
                    lambda tx: self.expire(tx, approval_id, run_id, "no answer in time")
                )
                raise ApprovalExpired(
                    f"The approval for '{approval['title']}' expired without an answer."
                ) from None
        finally:
            handle.approvals.pop(approval_id, None)
        if answer.get("used"):  # marked used by this call with the answer's own commit
            return answer
        # The agent has its answer at once; marking it used (a write that waits its turn in
        # the writer, ~0.2 s p99 under 20 agents) follows behind, and the run's next decision
        # waits for it (``_settled``), so no later identical call of this run takes it. That
        # decision waits on it: it is urgent for this run, as the decision's own record is.
        closing = asyncio.ensure_future(
            self._writer.run(
                lambda tx: self._close(tx, approval_id, call_id, answer), urgent_for=run_id
            )
        )
        closing.add_done_callback(_report_failure)
        handle.closing = closing
        return answer

    async def _close(self, tx: Tx, approval_id: str, call_id: str, answer: dict[str, Any]) -> None:
        """The agent has its answer: record one given by trust (not through the API) through
        the door, and mark the answer used so no other call takes it. An answer given through
        the door is marked in one statement, with no read of the approval first."""
        if await approval_door.mark_used_if_answered(tx, approval_id, call_id):
            return
        row = await policies.get_approval(tx.conn, approval_id)
        if row["status"] == "pending":
            await approval_door.resolve(
                tx,
                approval_id,
                answer["decision"],
                decided_by=answer.get("decided_by"),
                reason=answer.get("reason"),
                read=row,
            )
        await approval_door.mark_used(tx, approval_id, call_id)

    @staticmethod
    async def expire(tx: Tx, approval_id: str, run_id: str, why: str) -> None:
        row = await policies.get_approval(tx.conn, approval_id)
        if row["status"] != "pending":
            return
        await approval_door.resolve(
            tx, approval_id, "expired", decided_by=None, reason=why, read=row
        )


async def _settled(handle: RunHandle) -> None:
    """Wait until the run's last answered approval is marked used (its failure is raised
    here, in the decision after it)."""
    closing, handle.closing = handle.closing, None
    if closing is not None:
        await closing


def _report_failure(closing: asyncio.Future[None]) -> None:
    if not closing.cancelled() and (exc := closing.exception()) is not None:
        log.warning("an answered approval could not be marked used: %r", exc)


def _seconds_left(expires_at: str, default: float) -> float:
    """Seconds until an approval's ``expires_at`` (never below one: a bound approval that
    expired while the server was down gets a moment to be answered, then expires)."""
    try:
        when = datetime.strptime(expires_at, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return default
    return max(1.0, (when - datetime.now(UTC)).total_seconds())


public = approval_door.public


async def expire_pending_of_run(tx: Tx, run_id: str, why: str) -> None:
    """The agent that asked is gone for good (pause, cancel): its questions can't be answered."""
    await approval_door.expire_pending_of_run(tx, run_id, why)
