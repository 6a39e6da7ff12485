"""Request bodies and response models of tickets, reviews and work queues (issue 19)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from codeyard.api.schemas import Body
from codeyard.api.views import View

Status = Literal["inbox", "backlog", "in_progress", "in_review", "done", "cancelled"]
Kind = Literal["bug", "feature", "task", "chore"]
Priority = Literal["urgent", "high", "medium", "low", "none"]
Verdict = Literal["approved", "changes_requested", "commented"]
Number = Field(ge=1, le=2_000_000_000)


class TicketCreate(Body):
    title: str = Field(min_length=1, max_length=300)
    body: str = Field(default="", max_length=100_000, description="Markdown.")
    kind: Kind = "task"
    priority: Priority = "none"
    status: Status = "inbox"
    labels: list[str] = Field(default_factory=list, max_length=50)
    parent: int | None = Field(default=None, ge=1, description="Parent ticket's number.")
    blocked_by: list[int] = Field(
        default_factory=list, max_length=100, description="Numbers of tickets to finish first."
    )


class TicketUpdate(Body):
    title: str | None = Field(default=None, min_length=1, max_length=300)
    body: str | None = Field(default=None, max_length=100_000)
    kind: Kind | None = None
    priority: Priority | None = None
    status: Status | None = None
    labels: list[str] | None = Field(default=None, max_length=50)
    parent: int | None = Field(default=None, ge=1)
    blocked_by: list[int] | None = Field(default=None, max_length=100)


class TicketStatusBody(Body):
    status: Status


class TicketAssignBody(Body):
    """Both ``null`` (or left out) unassigns."""

    user_id: str | None = None
    agent_id: str | None = Field(default=None, description="An agent profile (GET /api/agents).")


class CommentCreate(Body):
    body: str = Field(min_length=1, max_length=50_000, description="Markdown; @name mentions.")


class TicketView(View):
    id: str
    project_id: str
    #: Per project, from 1; the ticket's address in routes.
    number: int
    title: str
    body: str
    kind: Kind
    priority: Priority
    status: Status
    labels: list[str]
    parent: int | None
    blocked_by: list[int]
    assignee_user_id: str | None
    assignee_agent_id: str | None
    #: Every run that worked the ticket, oldest first; ``current_run_id`` is the one its agent,
    #: diff and landing routes act on.
    run_ids: list[str]
    current_run_id: str | None
    created_by: str | None
    created_at: str
    updated_at: str


class TicketHit(TicketView):
    #: Higher is better (bm25 on SQLite, ts_rank on PostgreSQL; compare within one answer).
    score: float


class CommentView(View):
    id: str
    ticket_id: str
    author_id: str | None
    body: str
    mentions: list[str]
    created_at: str
