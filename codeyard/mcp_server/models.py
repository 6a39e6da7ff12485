"""Output schemas of the MCP tools: what a calling agent can rely on, published with each tool."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class DiffStats(BaseModel):
    files: int = 0
    insertions: int = 0
    deletions: int = 0


class ApprovalBrief(BaseModel):
    id: str
    run_id: str
    tool: str
    title: str
    status: str


class RunBrief(BaseModel):
    """A run as an agent needs it: where it is, what it cost, what waits for an answer."""

    id: str
    number: int
    title: str
    status: str
    status_reason: str | None = None
    provider: str
    model: str | None = None
    branch: str | None = None
    parent_run_id: str | None = None
    delegation: dict[str, Any] | None = Field(
        default=None, description="Depth and budget slice of a sub-run an agent started."
    )
    workspace_id: str | None = Field(
        default=None, description="The workspace the run was started in, if any."
    )
    budget_usd: float | None = None
    cost_usd: float = 0.0
    diff_stats: DiffStats = Field(default_factory=DiffStats)
    pending_approvals: list[ApprovalBrief] = Field(default_factory=list)
    created_at: str


class EventBrief(BaseModel):
    id: int = Field(description="Event-log id: pass the last one as `cursor` to resume.")
    type: str
    ts: str
    text: str = Field(description="A short rendering of the event's data.")


class StartResult(BaseModel):
    run: RunBrief
    cursor: int = Field(description="Event-log id to pass to wait_run.")


class WaitResult(BaseModel):
    run: RunBrief
    reached: bool = Field(description="False when the timeout came first.")
    reason: str = Field(description="completed | needs_approval | event | timeout")
    cursor: int = Field(description="The last event id seen: pass it to the next wait_run.")
    events: list[EventBrief] = Field(
        description="Events after the given cursor (streaming deltas left out, the last 50)."
    )


class RunList(BaseModel):
    runs: list[RunBrief]
    next_cursor: str | None = None


class DiffFile(BaseModel):
    path: str
    status: str | None = None
    insertions: int = 0
    deletions: int = 0


class DiffResult(BaseModel):
    run_id: str
    stats: DiffStats
    files: list[DiffFile]
    patch: str = Field(description="Unified diff, cut at max_bytes.")
    truncated: bool


class ApprovalResult(BaseModel):
    approval: ApprovalBrief
    decided_by: str
