"""Response models of the core resources: runs, their events, approvals, and pages of them.

Declared as ``response_model`` on the routes, they put every field of these answers in the
OpenAPI schema, from which the web UI's types are generated (``ui/src/api/schema.d.ts``).
``tests/unit/test_views.py`` keeps them in step with what the store returns (a field added to
``store.runs.PUBLIC_FIELDS`` but not here would otherwise be dropped from the answer).
"""

from __future__ import annotations

from functools import cache
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, GetJsonSchemaHandler, create_model
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from codeyard.domain.events import EVENT_MODELS, NewEvent
from codeyard.domain.status import RunStatus

T = TypeVar("T")


class View(BaseModel):
    model_config = ConfigDict(frozen=True)


class Page(View, Generic[T]):
    """A page of a list, newest first unless the route says otherwise."""

    data: list[T]
    #: Pass as ``?cursor=`` (events: ``?after=``) for the next page; ``null`` on the last one.
    next_cursor: str | None


class UsageView(View):
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    cost_usd: float


class DiffStatsView(View):
    files: int
    insertions: int
    deletions: int


class PullRequestRef(View):
    """The pull request a run was landed as (``GET /api/runs/{id}/pull-request`` has its state
    now); other members (``state``, ``checks``, ``host``, ``others``…) are kept as recorded."""

    model_config = ConfigDict(frozen=True, extra="allow")

    url: str
    number: int
    repo_id: str | None = None


class RunView(View):
    id: str
    number: int
    title: str
    prompt: str
    project_id: str
    repo_ids: list[str]
    agent_id: str | None
    provider: str
    model: str | None
    status: RunStatus
    status_reason: str | None
    #: ``merged``, ``pr_created`` or ``discarded`` once completed.
    resolution: str | None
    source_ref: str
    #: The commit each repository's worktree started from, by repository id.
    base_commits: dict[str, str]
    branch: str | None
    #: Where the run's files are, by repository id (empty once discarded or collected).
    worktrees: dict[str, str]
    parent_run_id: str | None
    #: For a sub-run started through the MCP server: who delegated it and within what limits.
    delegation: dict[str, Any] | None
    session_id: str | None
    turns: int
    usage: UsageView
    budget_usd: float | None
    pending_approvals: int
    diff_stats: DiffStatsView
    pull_request: PullRequestRef | None
    archived: bool
    labels: list[str]
    created_by: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    updated_at: str
    #: The workspace the run was started in (``POST /api/runs`` ``workspace_id``); None: none.
    workspace_id: str | None = None


class EventView(View):
    """A stored event; ``data`` is the type's payload (docs/api.md, "Events").

    The OpenAPI schema describes it as the union of every known type, each with its payload
    model from ``codeyard.domain.events``, so the UI's generated types narrow ``data`` by
    ``type`` and a payload field renamed on the server breaks the UI's build. At run time
    ``data`` stays the stored mapping: an event of a type this version does not know (stored
    by a newer one) is passed on as it is, not refused.
    """

    id: int
    run_id: str
    seq: int
    type: str
    ts: str
    data: dict[str, Any]

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        variants = [handler(_typed_event_view(m).__pydantic_core_schema__) for m in _models()]
        return {"oneOf": variants, "title": "EventView", "description": cls.__doc__}


def _models() -> list[type[NewEvent]]:
    return [EVENT_MODELS[name] for name in sorted(EVENT_MODELS)]


@cache
def _typed_event_view(model: type[NewEvent]) -> type[View]:
    """``EventView`` for one event type: ``type`` its literal name, ``data`` its model. Used for
    the schema only (built when the schema is), never to validate an answer."""
    name = model.model_fields["type"].default
    view: type[View] = create_model(
        f"{model.__name__}EventView",
        __base__=View,
        __doc__=f"A stored ``{name}`` event.",
        id=(int, ...),
        run_id=(str, ...),
        seq=(int, ...),
        type=(Literal[name], ...),  # type: ignore[arg-type]
        ts=(str, ...),
        data=(model, ...),
    )
    return view


ApprovalStatus = Literal["pending", "approved", "rejected", "expired"]


class ApprovalView(View):
    id: str
    run_id: str
    call_id: str
    tool: str
    kind: str
    input: dict[str, Any]
    title: str
    #: The policy rule that asked (``gate:…`` for a hard gate).
    rule: str | None
    status: ApprovalStatus
    decided_by: str | None
    reason: str | None
    #: ``run`` or ``project`` when the answer was remembered as an allow rule.
    remember: str | None
    created_at: str
    resolved_at: str | None
    expires_at: str


class CheckpointView(View):
    """A snapshot of a run's worktrees on hidden refs (one per turn, plus manual ones)."""

    id: str
    run_id: str
    number: int
    turn: int
    #: ``turn`` (automatic), ``manual`` or ``pre_restore`` (taken before a restore: undo).
    kind: str
    description: str | None
    #: The checkpoint commit per repository id.
    commits: dict[str, str]
    diff_stats: DiffStatsView
    created_at: str


class TaskView(View):
    content: str = ""
    status: str = "pending"


class SnapshotView(View):
    """Everything a client needs to draw a run; stream from ``last_event_id``."""

    run: RunView
    approvals: list[ApprovalView]
    #: The last 200 events, ascending.
    events: list[EventView]
    last_event_id: int
    diff_stats: DiffStatsView
    tasks: list[TaskView]
