"""Response models of the views folded from a run's events (``codeyard.domain.fold``).

Event payloads come from agents and old logs, so the values a fold copies from them (a call id,
a tool's input, a result) keep the loose types the folds give them; the shape around them is fixed.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from codeyard.api.views import TaskView, UsageView, View

CallId = str | int | None


class UserItem(View):
    kind: Literal["user"]
    text: str
    author: str
    ts: str | None


class AssistantItem(View):
    kind: Literal["assistant"]
    message_id: CallId
    text: str
    ts: str | None


class ThinkingItem(View):
    kind: Literal["thinking"]
    text: str
    ts: str | None


class ToolItem(View):
    kind: Literal["tool"]
    call_id: CallId
    tool: str | None
    tool_kind: str | None
    title: str | None
    input: Any
    #: ``null`` while the call runs.
    ok: bool | None
    output: Any
    error: Any
    exit_code: int | None
    duration_ms: float | None
    #: ``running``, ``done`` or ``failed``.
    status: str
    ts: str | None


class ApprovalItem(View):
    kind: Literal["approval"]
    approval_id: CallId
    tool: str | None
    approval_kind: str | None
    title: str | None
    input: Any
    status: str
    decided_by: str | None
    reason: str | None
    ts: str | None


class TurnItem(View):
    kind: Literal["turn"]
    turn: int | None
    stop_reason: str | None
    result: Any
    ts: str | None


class ErrorItem(View):
    kind: Literal["error"]
    message: str
    ts: str | None


TranscriptItem = Annotated[
    UserItem | AssistantItem | ThinkingItem | ToolItem | ApprovalItem | TurnItem | ErrorItem,
    Field(discriminator="kind"),
]


class TranscriptView(View):
    run_id: str
    items: list[TranscriptItem]


class StatusEntry(View):
    ts: str | None
    type: Literal["status"]
    from_: str | None = Field(alias="from")
    to: str | None
    reason: str | None


class MilestoneEntry(View):
    ts: str | None
    #: The event type (``turn.started``, ``git.merged``…).
    type: str
    summary: str


class TimelineView(View):
    run_id: str
    items: list[StatusEntry | MilestoneEntry]


class TasksView(View):
    run_id: str
    tasks: list[TaskView]


class CommandView(View):
    call_id: CallId
    command: str
    #: ``null`` while the command runs.
    exit_code: int | None
    duration_ms: float | None
    output_tail: str | None
    ts: str | None


class ToolStatsView(View):
    calls: int
    failures: int
    duration_ms: float


class TelemetryView(View):
    run_id: str
    usage: UsageView
    turns: int
    tool_calls: int
    #: Counts by tool name.
    tools: dict[str, ToolStatsView]
    duration_ms: float
    messages: int
    first_event_at: str | None
    last_event_at: str | None


class ChangedFileView(View):
    path: str
    change: str | None


class SummaryView(View):
    run_id: str
    changed_files: list[ChangedFileView]
    commands: list[str]
    tests_run: list[str]
    final_message: str | None
    turns: int
