"""What each MCP tool does, for one authenticated caller: the use cases behind ``server.py``.

Tools are few and high level on purpose: an agent that gets low-level verbs (run a shell
command, write a file) routes around governance, while ``start_run`` puts every step of the
work it delegates through Codeyard's policies, approvals and budgets. Every function takes an
:class:`Access` (services, caller, and the agent's run when the caller is one) and checks the
caller's scope and reach before it does anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass
from typing import Any, Literal

from codeyard.auth.principal import Principal
from codeyard.domain.errors import Forbidden
from codeyard.domain.events import StoredEvent
from codeyard.domain.status import IDLE, RunStatus
from codeyard.events.hub import EventFilter, SubscriberDropped
from codeyard.mcp_server import models as m
from codeyard.services import approvals as approval_service
from codeyard.services import delegation, resolution
from codeyard.services import review as review_service
from codeyard.services import runs as run_service
from codeyard.services import workspaces as workspace_service
from codeyard.services.context import Services
from codeyard.store import events, policies, runs

Until = Literal["completed", "needs_approval", "any"]
#: The longest one wait_run may block; the caller waits again with the returned cursor.
MAX_WAIT_SECONDS = 300.0
_BRIEF_EVENTS = 50
_LAND_SCOPES = {
    "merge": "git:merge",
    "squash": "git:merge",
    "rebase": "git:merge",
    "create_pr": "git:push",
    "discard": "runs:control",
}


@dataclass(frozen=True, slots=True)
class Access:
    svc: Services
    principal: Principal
    #: Set when the caller is an agent holding its run's token.
    agent_run_id: str | None = None

    def need(self, scope: str) -> None:
        if scope not in self.principal.scopes:
            raise Forbidden(
                f"This tool needs the '{scope}' scope; the caller has: "
                f"{', '.join(sorted(self.principal.scopes)) or 'none'}.",
                required_scope=scope,
            )


async def brief(svc: Services, run: dict[str, Any]) -> m.RunBrief:
    pending: list[m.ApprovalBrief] = []
    if run["pending_approvals"]:
        async with svc.engine.connect() as conn:
            rows = await policies.pending_of_run(conn, run["id"])
        pending = [
            m.ApprovalBrief(
                id=r["id"], run_id=r["run_id"], tool=r["tool"], title=r["title"], status=r["status"]
            )
            for r in rows
        ]
    return m.RunBrief(
        id=run["id"],
        number=run["number"],
        title=run["title"],
        status=run["status"],
        status_reason=run["status_reason"],
        provider=run["provider"],
        model=run["model"],
        branch=run["branch"],
        parent_run_id=run["parent_run_id"],
        delegation=run.get("delegation"),
        workspace_id=run.get("workspace_id"),
        budget_usd=run["budget_usd"],
        cost_usd=float((run["usage"] or {}).get("cost_usd") or 0.0),
        diff_stats=m.DiffStats(**(run["diff_stats"] or {})),
        pending_approvals=pending,
        created_at=run["created_at"],
    )


async def _last_event_id(svc: Services, run_id: str) -> int:
    async with svc.engine.connect() as conn:
        tail = await events.read_tail(conn, run_id, 1)
    return tail[-1].id if tail else 0


async def workspace_id(a: Access, ref: str | None) -> str | None:
    """The id of the workspace ``ref`` names (an id or a name, as a person would say it)."""
    return None if ref is None else str((await workspace_service.find(a.svc, ref))["id"])


async def start_run(a: Access, args: dict[str, Any]) -> m.StartResult:
    """People may name a workspace (``args["workspace"]``: its project and defaults apply as
    for ``POST /api/runs``, and only its owner or an admin may run in it); an agent's sub-run
    stays in its parent's workspace (``services.delegation``)."""
    a.need("runs:write")
    args = dict(args)
    named = args.pop("workspace", None)
    if a.agent_run_id is not None:
        run = await delegation.start_sub_run(a.svc, a.principal, a.agent_run_id, args)
    else:
        args["workspace_id"] = await workspace_id(a, named)
        run = await run_service.create(a.svc, args, a.principal)
    return m.StartResult(run=await brief(a.svc, run), cursor=await _last_event_id(a.svc, run["id"]))


def _reason(until: Until, run: dict[str, Any], new: list[StoredEvent]) -> str | None:
    """Why the wait ends now (None: keep waiting). ``any`` waits for a new event even on a
    resting run (an operator may still message it); the others end once the run rests."""
    if until == "any":
        return "event" if new else None
    if until == "needs_approval" and run["pending_approvals"]:
        return "needs_approval"
    if RunStatus(run["status"]) in IDLE:
        return "completed"
    return None


def _render(event: StoredEvent) -> m.EventBrief:
    data = event.data
    text = data.get("text") if isinstance(data.get("text"), str) else None
    if text is None:
        text = json.dumps(data, default=str, separators=(",", ":"))
    return m.EventBrief(id=event.id, type=event.type, ts=event.ts, text=text[:500])


async def wait_run(
    a: Access, run_ref: str, until: Until, cursor: int, timeout: float
) -> m.WaitResult:
    """Block until ``until`` holds, reading the event log after ``cursor`` (so a wait that
    was cut by a reconnect resumes exactly where it left off), or until ``timeout``."""
    a.need("runs:read")
    run = await delegation.check_access(a.svc, a.principal, a.agent_run_id, run_ref, acting=False)
    run_id = run["id"]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(0.0, min(timeout, MAX_WAIT_SECONDS))
    seen: list[StoredEvent] = []
    sub = a.svc.hub.subscribe(EventFilter(run_id=run_id))
    try:
        while True:
            async with a.svc.engine.connect() as conn:
                new = await events.read(conn, run_id=run_id, after=cursor, limit=1000)
                run = await runs.get(conn, run_id)
            if new:
                cursor = new[-1].id
                seen.extend(e for e in new if not e.type.endswith(".delta"))
            reason = _reason(until, run, seen)
            remaining = deadline - loop.time()
            if reason is None and remaining <= 0:
                reason = "timeout"
            if reason is not None:
                return m.WaitResult(
                    run=await brief(a.svc, run),
                    reached=reason != "timeout",
                    reason=reason,
                    cursor=cursor,
                    events=[_render(e) for e in seen[-_BRIEF_EVENTS:]],
                )
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(sub.next_batch(), remaining)
            except SubscriberDropped:
                sub = a.svc.hub.subscribe(EventFilter(run_id=run_id))
    finally:
        sub.close()


async def send_message(a: Access, run_ref: str, text: str) -> m.RunBrief:
    a.need("runs:write")
    run = await delegation.check_access(a.svc, a.principal, a.agent_run_id, run_ref, acting=True)
    author = "operator" if a.agent_run_id is None else f"run:{a.agent_run_id}"
    return await brief(a.svc, await run_service.message(a.svc, run["id"], text, author=author))


async def get_run(a: Access, run_ref: str) -> m.RunBrief:
    a.need("runs:read")
    run = await delegation.check_access(a.svc, a.principal, a.agent_run_id, run_ref, acting=False)
    return await brief(a.svc, run)


async def list_runs(
    a: Access, status: str | None, limit: int, cursor: str | None, workspace: str | None = None
) -> m.RunList:
    """Newest first, of one workspace if named (by id or name); an agent sees itself and its
    sub-runs only."""
    a.need("runs:read")
    statuses = [s for s in (status or "").split(",") if s] or None
    in_workspace = await workspace_id(a, workspace)
    if a.agent_run_id is not None:
        mine = await delegation.agent_runs(a.svc, a.agent_run_id)
        async with a.svc.engine.connect() as conn:
            rows = [await runs.get(conn, rid) for rid in mine]
        rows = [r for r in rows if statuses is None or r["status"] in statuses]
        if in_workspace is not None:
            rows = [r for r in rows if r.get("workspace_id") == in_workspace]
        rows.sort(key=lambda r: -int(r["number"]))
        return m.RunList(runs=[await brief(a.svc, r) for r in rows[:limit]])
    async with a.svc.engine.connect() as conn:
        rows, next_cursor = await runs.list_page(
            conn,
            status=statuses,
            archived=None,
            limit=limit,
            cursor=cursor,
            workspace_id=in_workspace,
        )
    return m.RunList(runs=[await brief(a.svc, r) for r in rows], next_cursor=next_cursor)


async def get_diff(a: Access, run_ref: str, max_bytes: int) -> m.DiffResult:
    a.need("runs:read")
    run = await delegation.check_access(a.svc, a.principal, a.agent_run_id, run_ref, acting=False)
    files = await review_service.diff(a.svc, run["id"], "json", None, None)
    patch = await review_service.diff(a.svc, run["id"], "text", None, None)
    assert isinstance(files, list) and isinstance(patch, str)
    stats = m.DiffStats(
        files=len(files),
        insertions=sum(int(f.get("additions") or 0) for f in files),
        deletions=sum(int(f.get("deletions") or 0) for f in files),
    )
    raw = patch.encode()
    return m.DiffResult(
        run_id=run["id"],
        stats=stats,
        files=[
            m.DiffFile(
                path=str(f.get("path")),
                status=f.get("status"),
                insertions=int(f.get("additions") or 0),
                deletions=int(f.get("deletions") or 0),
            )
            for f in files
        ],
        patch=raw[:max_bytes].decode(errors="ignore"),
        truncated=len(raw) > max_bytes,
    )


async def decide_approval(
    a: Access, approval_id: str, decision: Literal["approved", "rejected"], reason: str | None
) -> m.ApprovalResult:
    """Answer an approval. An agent may answer only those its sub-runs asked."""
    a.need("approvals:resolve")
    async with a.svc.engine.connect() as conn:
        approval = await policies.get_approval(conn, approval_id)
    if a.agent_run_id is not None:
        await delegation.check_may_decide(a.svc, a.agent_run_id, approval_id)
        decided_by = f"run:{a.agent_run_id}"
    else:
        await delegation.check_access(a.svc, a.principal, None, approval["run_id"], acting=True)
        decided_by = f"mcp:{a.principal.name}"
    row = await approval_service.resolve(
        a.svc, approval_id, decision, reason, None, decided_by=decided_by
    )
    return m.ApprovalResult(
        approval=m.ApprovalBrief(
            id=row["id"],
            run_id=row["run_id"],
            tool=row["tool"],
            title=row["title"],
            status=row["status"],
        ),
        decided_by=decided_by,
    )


async def land_run(
    a: Access, run_ref: str, action: str, message: str | None, target_branch: str | None
) -> m.RunBrief:
    """Merge, squash, rebase, open a pull request or discard; never for an agent's token."""
    if a.agent_run_id is not None:
        raise Forbidden(
            "Agents cannot land runs: a person reviews and lands a sub-run's work (its diff is "
            "in get_diff)."
        )
    a.need(_LAND_SCOPES[action])
    run = await delegation.check_access(a.svc, a.principal, None, run_ref, acting=True)
    body = {"action": action, "message": message, "target_branch": target_branch}
    return await brief(a.svc, await resolution.resolve(a.svc, run["id"], body, a.principal))


async def transcript_text(a: Access, run_ref: str) -> str:
    """The run's conversation as plain text (the transcript resource)."""
    a.need("runs:read")
    run = await delegation.check_access(a.svc, a.principal, a.agent_run_id, run_ref, acting=False)
    async with a.svc.engine.connect() as conn:
        rows = await events.read_all(conn, run["id"])
    lines = [f"# Run {run['number']}: {run['title']} ({run['status']})", ""]
    for e in rows:
        if e.type.endswith(".delta"):
            continue
        lines.append(f"[{e.id}] {e.type}: {_render(e).text}")
    return "\n".join(lines) + "\n"


async def diff_text(a: Access, run_ref: str) -> str:
    a.need("runs:read")
    run = await delegation.check_access(a.svc, a.principal, a.agent_run_id, run_ref, acting=False)
    patch = await review_service.diff(a.svc, run["id"], "text", None, None)
    assert isinstance(patch, str)
    return patch
