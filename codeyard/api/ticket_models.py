"""Request bodies and response models of tickets, reviews and work queues (issue 19)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from codeyard.api.schemas import Body, NonNull
from codeyard.api.views import RunView, View

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
    """Fields left out keep their value; ``parent: null`` detaches, the others cannot be null."""

    title: NonNull[Annotated[str, Field(min_length=1, max_length=300)]] = None
    body: NonNull[Annotated[str, Field(max_length=100_000)]] = None
    kind: NonNull[Kind] = None
    priority: NonNull[Priority] = None
    status: NonNull[Status] = None
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


class AgentStartBody(Body):
    """Everything optional: the ticket's assigned agent profile (else the default) works it."""

    agent_id: str | None = None
    provider: str | None = None
    model: str | None = None
    agent_options: dict[str, Any] | None = None
    source_ref: str | None = Field(default=None, min_length=1, max_length=250)
    budget_usd: float | None = Field(default=None, ge=0)


class TicketMessageBody(Body):
    text: str = Field(min_length=1, max_length=200_000)


class MergeBody(Body):
    strategy: Literal["merge", "squash", "rebase"] = "merge"
    target_branch: str | None = Field(default=None, min_length=1, max_length=250)
    message: str | None = Field(default=None, max_length=20_000)


class PullRequestBody(Body):
    title: str | None = Field(default=None, max_length=300)
    body: str | None = Field(default=None, max_length=60_000)
    target_branch: str | None = Field(default=None, min_length=1, max_length=250)
    draft: bool = False


class AgentStatusView(View):
    ticket: int
    #: True while the current run is queued, preparing, running or waiting.
    working: bool
    run: RunView | None
    run_ids: list[str]


class ReviewComment(Body):
    """A comment anchored to a line of the diff: the file, the line in the new (``right``) or
    old (``left``) version, and the text."""

    path: str = Field(min_length=1, max_length=1000)
    line: int | None = Field(default=None, ge=1)
    side: Literal["left", "right"] = "right"
    body: str = Field(min_length=1, max_length=20_000)


class ReviewCreate(Body):
    verdict: Verdict
    body: str = Field(default="", max_length=50_000)
    comments: list[ReviewComment] = Field(default_factory=list, max_length=200)


class RunReviewBody(Body):
    notes: str = Field(default="", max_length=50_000)


class ReviewCommentView(View):
    path: str
    line: int | None
    side: Literal["left", "right"]
    body: str


class ReviewView(View):
    id: str
    run_id: str
    ticket_id: str | None
    verdict: Verdict
    body: str
    comments: list[ReviewCommentView]
    author_id: str | None
    created_at: str


class ReviewResult(ReviewView):
    #: ``changes_requested``: the review became the agent's next turn.
    sent_to_agent: bool


class QueueCreate(Body):
    name: str = Field(min_length=1, max_length=200)
    tickets: list[int] = Field(
        min_length=1, max_length=500, description="Ticket numbers, in the order to run them."
    )
    max_parallel: int = Field(default=1, ge=1, le=16, description="1: one after another.")
    #: ``stack``: no landing; each ticket's run starts from the previous ticket's branch and
    #: opens a pull request based on it (the first on the default branch): stacked PRs.
    land: Literal["merge", "squash", "rebase", "stack"] = "merge"
    budget_usd: float | None = Field(
        default=None, gt=0, description="What the queue's runs may spend together."
    )


class QueueUpdate(Body):
    name: NonNull[Annotated[str, Field(min_length=1, max_length=200)]] = None
    tickets: NonNull[Annotated[list[int], Field(min_length=1, max_length=500)]] = None
    max_parallel: NonNull[Annotated[int, Field(ge=1, le=16)]] = None
    land: NonNull[Literal["merge", "squash", "rebase", "stack"]] = None
    budget_usd: float | None = Field(default=None, gt=0, description="null: no budget.")


class QueueItemView(View):
    ticket: int
    state: Literal["pending", "running", "done", "failed", "skipped"]
    run_id: str | None
    reason: str | None


class QueueEta(View):
    #: Tickets not yet done or skipped.
    remaining: int
    #: Expected seconds until they are landed, from the project's landed tickets of the same
    #: kind (median), over ``max_parallel`` lanes; ``null`` without any history.
    seconds: float | None
    #: How many landed tickets the estimate is based on.
    samples: int


class QueueView(View):
    id: str
    project_id: str
    name: str
    tickets: list[int]
    items: list[QueueItemView]
    max_parallel: int
    land: Literal["merge", "squash", "rebase", "stack"]
    #: ``idle``, ``running``, ``paused`` (see ``paused_reason``), ``done`` or ``cancelled``.
    status: Literal["idle", "running", "paused", "done", "cancelled"]
    paused_reason: str | None
    #: What the queue's runs may spend together (``null``: no limit); each run it starts gets
    #: its share of what is left as its own budget, and a spent budget pauses the queue.
    budget_usd: float | None
    #: Spent by its runs so far (settled items' runs, retries included, and the working ones).
    spent_usd: float
    eta: QueueEta
    #: Who started it last: its runs are this user's.
    created_by: str | None
    created_at: str
    updated_at: str
