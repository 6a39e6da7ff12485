"""Event types: one frozen model per type, their union, and the stored event record.

Every event an agent, the executor or a service emits is one of the models below, so mypy
checks each emitter (the provider normalizers above all) against the contract in docs/api.md,
and ``EVENT_TYPES`` is derived from the union rather than kept by hand. Stored data is read back
with :func:`parse_event`: a type this version does not know becomes :class:`Unknown` (forward
compatibility of old and new logs), never an exception.

Events are numbered twice: ``id`` is global and increasing (the SSE id), ``seq`` counts within a
run. The JSON of ``data`` is serialized once, when the writer numbers the event, and reused by
the log, the hub and every stream.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from codeyard.domain.tools import ToolKind

__all__ = [
    "EVENT_MODELS",
    "EVENT_TYPES",
    "OUTPUT_LIMIT",
    "AgentDelta",
    "AgentMessage",
    "AgentSession",
    "AgentThinking",
    "ApprovalRequested",
    "ApprovalResolved",
    "CheckCompleted",
    "CheckStarted",
    "CheckSuiteCompleted",
    "CheckpointCreated",
    "CheckpointRestored",
    "ErrorEvent",
    "Event",
    "FeedbackExhausted",
    "FeedbackSent",
    "FileChange",
    "FileChanged",
    "GitBranchRenamed",
    "GitCommitted",
    "GitMerged",
    "GitPushed",
    "GitRebased",
    "KnownEvent",
    "NewEvent",
    "PolicyDecision",
    "PrCreated",
    "PrMerged",
    "PrReviewComment",
    "PrUpdated",
    "PreviewPortClosed",
    "PreviewPortOpened",
    "QueueAdvanced",
    "QueuePaused",
    "ReviewSubmitted",
    "RunCreated",
    "RunModelApplied",
    "RunModelChanged",
    "RunStatusChanged",
    "RunTrusted",
    "StoredEvent",
    "Task",
    "TaskUpdated",
    "ToolCall",
    "ToolResult",
    "TurnCompleted",
    "TurnStarted",
    "Unknown",
    "Usage",
    "UserMessage",
    "WorkspaceRemoved",
    "parse_event",
    "tail",
    "tool_result",
    "try_parse_event",
    "utc_now",
    "validate_new",
]

#: How much of a tool's output (or error) a ``tool.result`` keeps: the end, where failures are.
OUTPUT_LIMIT = 8000


class NewEvent(BaseModel):
    """An event before it has been numbered and stored: the base of every event model.

    ``type`` is each model's discriminator and is not part of ``data``. Models refuse unknown
    fields, so a misspelt key fails where the event is made, not in a browser later.
    """

    # Each model's validator is built when its type is first made or read, not at import:
    # ~45 models a server starting up does not need yet (issue 15). Subclasses inherit it.
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        validate_by_name=True,
        serialize_by_alias=True,
        defer_build=True,
    )

    type: str = Field(exclude=True)

    @property
    def data(self) -> dict[str, Any]:
        """The payload as stored and sent (JSON types, aliases such as ``from``)."""
        return self.model_dump(mode="json")

    @cached_property
    def data_json(self) -> str:
        """The payload serialized once, for the log and every stream."""
        return self.model_dump_json()


class RunCreated(NewEvent):
    type: Literal["run.created"] = Field(default="run.created", exclude=True)
    #: The run object as ``GET /api/runs/{id}`` returned it when created.
    run: dict[str, Any]


class RunStatusChanged(NewEvent):
    type: Literal["run.status"] = Field(default="run.status", exclude=True)
    from_: str = Field(alias="from")
    to: str
    reason: str | None = None


class TurnStarted(NewEvent):
    type: Literal["turn.started"] = Field(default="turn.started", exclude=True)
    turn: int
    #: Empty for a resumed turn (the prompt is already in the transcript).
    prompt: str
    #: ``create``, ``message``, ``resume``, ``agent_merge``…: what started the turn.
    source: str
    #: For a resumed turn: the source of the turn it continues.
    resumed_source: str | None = None


class TurnCompleted(NewEvent):
    type: Literal["turn.completed"] = Field(default="turn.completed", exclude=True)
    turn: int
    stop_reason: str
    result: str | None
    usage: dict[str, Any]
    cost_usd: float | None
    duration_ms: int


class AgentSession(NewEvent):
    type: Literal["agent.session"] = Field(default="agent.session", exclude=True)
    session_id: str
    provider: str
    cli_version: str | None
    model: str | None
    tools: list[str]


class AgentMessage(NewEvent):
    type: Literal["agent.message"] = Field(default="agent.message", exclude=True)
    #: The id the message's streamed ``agent.delta`` events carried (its final text replaces them).
    message_id: str | None
    text: str


class AgentDelta(NewEvent):
    """Text as it streams; consecutive deltas of one message are coalesced before storage."""

    type: Literal["agent.delta"] = Field(default="agent.delta", exclude=True)
    message_id: str | None
    text: str


class AgentThinking(NewEvent):
    type: Literal["agent.thinking"] = Field(default="agent.thinking", exclude=True)
    text: str


class ToolCall(NewEvent):
    type: Literal["tool.call"] = Field(default="tool.call", exclude=True)
    call_id: str
    tool: str
    kind: ToolKind
    title: str
    input: dict[str, Any]


class ToolResult(NewEvent):
    """Build it with :func:`tool_result`, which keeps output and error to ``OUTPUT_LIMIT``."""

    type: Literal["tool.result"] = Field(default="tool.result", exclude=True)
    call_id: str
    ok: bool
    output: str
    error: str | None
    #: ``null`` when the tool is not a process or the agent does not report it.
    exit_code: int | None = None
    duration_ms: int


FileChange = Literal["added", "modified", "deleted"]


class FileChanged(NewEvent):
    type: Literal["file.changed"] = Field(default="file.changed", exclude=True)
    path: str
    change: FileChange
    #: Only for runs over several repositories.
    repo_id: str | None = None


class Task(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    content: str
    status: str


class TaskUpdated(NewEvent):
    """The agent's whole task list (each update replaces the last)."""

    type: Literal["task.updated"] = Field(default="task.updated", exclude=True)
    tasks: list[Task]


class Usage(NewEvent):
    """Tokens and dollars of this update (an increment, not a running total)."""

    type: Literal["usage"] = Field(default="usage", exclude=True)
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cost_usd: float | None = None
    #: ``reported`` by the agent, computed from the ``price_map``, or ``null`` (unpriced);
    #: ``estimate``: priced from the map as the turn streams, until the agent's own total at
    #: the turn's end settles it (its ``reported`` event then holds the difference).
    cost_source: Literal["reported", "price_map", "estimate"] | None = None
    #: The model the tokens were spent on, when the agent says (else the session's).
    model: str | None = None

    @classmethod
    def of(
        cls, counts: Mapping[str, int], *, cost_usd: float | None = None, model: str | None = None
    ) -> Usage:
        """From the four token counts by name (a missing one is 0)."""
        return cls(
            input_tokens=counts.get("input_tokens", 0),
            output_tokens=counts.get("output_tokens", 0),
            cache_read_tokens=counts.get("cache_read_tokens", 0),
            cache_write_tokens=counts.get("cache_write_tokens", 0),
            cost_usd=cost_usd,
            model=model,
        )


class ApprovalRequested(NewEvent):
    type: Literal["approval.requested"] = Field(default="approval.requested", exclude=True)
    #: The approval object as ``GET /api/approvals/{id}`` returns it.
    approval: dict[str, Any]
    #: Asked because a hard gate matched (trusting the run does not answer it).
    gate: bool = False
    run_title: str | None = None
    run_number: int | None = None


class ApprovalResolved(NewEvent):
    type: Literal["approval.resolved"] = Field(default="approval.resolved", exclude=True)
    approval_id: str
    #: ``approved``, ``rejected`` or ``expired``.
    decision: str
    decided_by: str | None
    reason: str | None
    #: The policy made from an "approve and remember" answer.
    remembered_policy_id: str | None = None


class PolicyDecision(NewEvent):
    type: Literal["policy.decision"] = Field(default="policy.decision", exclude=True)
    call_id: str
    tool: str
    #: ``allow``, ``deny`` or ``ask``.
    decision: str
    rule: str | None
    reason: str | None
    #: A hard gate decided it.
    gate: bool = False


class UserMessage(NewEvent):
    type: Literal["user.message"] = Field(default="user.message", exclude=True)
    text: str
    #: ``operator`` or the name of what wrote it (an agent merge…).
    author: str


class CheckpointCreated(NewEvent):
    type: Literal["checkpoint.created"] = Field(default="checkpoint.created", exclude=True)
    #: The checkpoint object as ``GET /api/runs/{id}/checkpoints`` lists it.
    checkpoint: dict[str, Any]


class CheckpointRestored(NewEvent):
    type: Literal["checkpoint.restored"] = Field(default="checkpoint.restored", exclude=True)
    checkpoint_id: str
    number: int
    #: The checkpoint taken just before, to undo the restore.
    undo_checkpoint_id: str


class GitCommitted(NewEvent):
    type: Literal["git.committed"] = Field(default="git.committed", exclude=True)
    repo_id: str
    sha: str
    message: str


class GitMerged(NewEvent):
    type: Literal["git.merged"] = Field(default="git.merged", exclude=True)
    repo_id: str
    target: str
    sha: str
    strategy: str
    fast_forward: bool


class GitPushed(NewEvent):
    type: Literal["git.pushed"] = Field(default="git.pushed", exclude=True)
    repo_id: str
    branch: str
    remote: str
    force: bool


class GitRebased(NewEvent):
    type: Literal["git.rebased"] = Field(default="git.rebased", exclude=True)
    #: The new head per repository id.
    heads: dict[str, str]
    onto: str | None


class GitBranchRenamed(NewEvent):
    type: Literal["git.branch_renamed"] = Field(default="git.branch_renamed", exclude=True)
    from_: str | None = Field(alias="from")
    to: str


class PrCreated(NewEvent):
    type: Literal["pr.created"] = Field(default="pr.created", exclude=True)
    repo_id: str
    url: str
    number: int


class ReviewSubmitted(NewEvent):
    """A person reviewed the run's work (issue 19); ``ticket`` is the number it works, if any."""

    type: Literal["review.submitted"] = Field(default="review.submitted", exclude=True)
    review_id: str
    verdict: str
    ticket: int | None
    comments: int


class QueueAdvanced(NewEvent):
    """A work queue started this run for its next ticket."""

    type: Literal["queue.advanced"] = Field(default="queue.advanced", exclude=True)
    queue_id: str
    ticket: int


class QueuePaused(NewEvent):
    """A work queue stopped at this run's ticket; ``reason`` says why and what to do."""

    type: Literal["queue.paused"] = Field(default="queue.paused", exclude=True)
    queue_id: str
    ticket: int
    reason: str


class RunTrusted(NewEvent):
    type: Literal["run.trusted"] = Field(default="run.trusted", exclude=True)
    by: str


class RunModelChanged(NewEvent):
    """The run's model was switched (``PUT /api/runs/{id}/model``); ``applies`` says when it
    takes effect: ``now`` (no turn running), ``next_model_call`` (the running agent switches
    mid-turn; ``run.model_applied`` follows once it has), ``next_turn``."""

    type: Literal["run.model_changed"] = Field(default="run.model_changed", exclude=True)
    from_: str | None = Field(alias="from")
    to: str | None
    applies: Literal["now", "next_model_call", "next_turn"] = "next_turn"


class RunModelApplied(NewEvent):
    """The running agent switched to ``model`` mid-turn (Claude Code's ``set_model`` control
    request, ACP ``session/set_model`` for Gemini CLI): its next model call, and the usage
    priced after this event, use it."""

    type: Literal["run.model_applied"] = Field(default="run.model_applied", exclude=True)
    model: str | None
    turn: int


class PreviewPortOpened(NewEvent):
    """Something listens on a port of the run's lease (issue 18): the UI shows a link."""

    type: Literal["preview.port_opened"] = Field(default="preview.port_opened", exclude=True)
    port: int
    #: Position in the run's block (``CODEYARD_PORT_<index>``).
    index: int
    path_url: str


class PreviewPortClosed(NewEvent):
    type: Literal["preview.port_closed"] = Field(default="preview.port_closed", exclude=True)
    port: int


class ContextAdded(NewEvent):
    """``rag_enabled``: what the code index added to the agent's instructions (issue 22)."""

    type: Literal["context.added"] = Field(default="context.added", exclude=True)
    #: ``code_index``.
    source: str
    query: str
    #: ``{repo_id, path, line, score}`` of each snippet added, best first.
    items: list[dict[str, Any]]
    #: Characters added to the instructions.
    chars: int


class WorkspaceRemoved(NewEvent):
    type: Literal["workspace.removed"] = Field(default="workspace.removed", exclude=True)
    #: ``retention`` (the daily pass) or what else removed it.
    reason: str
    bytes: int
    #: The worktree paths removed.
    worktrees: list[str]
    #: ``{repo_id, branch}`` of the run branches kept (unmerged work) and deleted.
    branches_kept: list[dict[str, Any]]
    branches_deleted: list[dict[str, Any]]


class CheckStarted(NewEvent):
    """A local check command started in the run's worktree (issue 21)."""

    type: Literal["check.started"] = Field(default="check.started", exclude=True)
    repo_id: str
    name: str
    command: str
    #: ``turn`` (a turn ended) or ``manual`` (``POST /api/runs/{id}/checks``).
    trigger: str


class CheckCompleted(NewEvent):
    """One local check's result, with the end of its output (where failures are)."""

    type: Literal["check.completed"] = Field(default="check.completed", exclude=True)
    repo_id: str
    name: str
    command: str
    ok: bool
    exit_code: int | None
    timed_out: bool
    duration_ms: int
    log_tail: str


class CheckSuiteCompleted(NewEvent):
    """Every check of the run's repositories ran; ``trees`` is the worktree state they saw
    (landing with ``required`` checks needs a passing suite on the current state)."""

    type: Literal["check.suite_completed"] = Field(default="check.suite_completed", exclude=True)
    trigger: str
    passed: bool
    #: ``repo_id:name`` of each check that failed.
    failed: list[str]
    #: The tree id of each worktree's state when the checks ran, by repository id.
    trees: dict[str, str]


class FeedbackSent(NewEvent):
    """A failure was handed back to the agent as its next turn (fix loop, issue 21)."""

    type: Literal["feedback.sent"] = Field(default="feedback.sent", exclude=True)
    #: ``checks`` (local checks), ``ci`` (a failed check run on the PR) or ``review``.
    source: str
    #: What this failure is remembered by (it is handed back once).
    key: str
    attempt: int
    limit: int


class FeedbackExhausted(NewEvent):
    """The fix loop gave up: the run needs a person's attention."""

    type: Literal["feedback.exhausted"] = Field(default="feedback.exhausted", exclude=True)
    source: str
    attempts: int
    reason: str


class PrUpdated(NewEvent):
    """GitHub said something about the run's pull request (a webhook delivery, issue 21)."""

    type: Literal["pr.updated"] = Field(default="pr.updated", exclude=True)
    repo: str
    number: int
    #: The webhook event (``pull_request``, ``check_run``, ``pull_request_review``…) and action.
    event: str
    action: str | None
    delivery_id: str
    #: One line a person can read: "check run build completed: failure".
    summary: str
    head_sha: str | None = None


class PrReviewComment(NewEvent):
    """One comment of a review on the run's pull request, synced from GitHub (issue 21): its own
    event so the run view shows each at its file and line, and the agent's turn can cite it."""

    type: Literal["pr.review_comment"] = Field(default="pr.review_comment", exclude=True)
    repo: str
    number: int
    review_id: int
    #: None for the review's own body (its summary); else the inline comment's id.
    comment_id: int | None
    user: str
    #: The reviewer's verdict: ``changes_requested``, ``commented`` or ``approved``.
    state: str
    path: str | None
    line: int | None
    body: str
    url: str | None = None


class PrMerged(NewEvent):
    """The run's pull request was merged on the forge through Codeyard."""

    type: Literal["pr.merged"] = Field(default="pr.merged", exclude=True)
    repo_id: str
    number: int
    method: str
    head_sha: str | None


class ErrorEvent(NewEvent):
    type: Literal["error"] = Field(default="error", exclude=True)
    message: str
    detail: str | None = None


#: Every event type Codeyard emits. Adding a type is adding a model here (and to docs/api.md;
#: tests/unit/test_events_contract.py checks both).
KnownEvent = Annotated[
    RunCreated
    | RunStatusChanged
    | TurnStarted
    | TurnCompleted
    | AgentSession
    | AgentMessage
    | AgentDelta
    | AgentThinking
    | ToolCall
    | ToolResult
    | FileChanged
    | TaskUpdated
    | Usage
    | ApprovalRequested
    | ApprovalResolved
    | PolicyDecision
    | UserMessage
    | CheckpointCreated
    | CheckpointRestored
    | GitCommitted
    | GitMerged
    | GitPushed
    | GitRebased
    | GitBranchRenamed
    | PrCreated
    | ReviewSubmitted
    | QueueAdvanced
    | QueuePaused
    | RunTrusted
    | ContextAdded
    | WorkspaceRemoved
    | RunModelChanged
    | RunModelApplied
    | PreviewPortOpened
    | PreviewPortClosed
    | CheckStarted
    | CheckCompleted
    | CheckSuiteCompleted
    | FeedbackSent
    | FeedbackExhausted
    | PrUpdated
    | PrReviewComment
    | PrMerged
    | ErrorEvent,
    Field(discriminator="type"),
]


class Unknown(NewEvent):
    """A stored event of a type this version does not know (written by a newer one, or an
    older type since removed): kept as it is, shown as raw data, never folded."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str = Field(exclude=True)
    payload: dict[str, Any] = Field(default_factory=dict)

    @property
    def data(self) -> dict[str, Any]:
        return dict(self.payload)

    @cached_property
    def data_json(self) -> str:
        return json.dumps(self.payload, separators=(",", ":"), ensure_ascii=False)


#: What reading any stored event gives.
Event = KnownEvent | Unknown

#: The model of each type, derived from the union (the one list of types).
EVENT_MODELS: dict[str, type[NewEvent]] = {
    model.model_fields["type"].default: model for model in get_args(get_args(KnownEvent)[0])
}
EVENT_TYPES: frozenset[str] = frozenset(EVENT_MODELS)


def parse_event(type: str, data: dict[str, Any]) -> NewEvent:
    """A stored event's model; :class:`Unknown` for a type not in the union.

    Raises ``pydantic.ValidationError`` when a known type's data does not fit its model (a
    log written by a buggy or older emitter): callers decide whether to report or refuse it.
    """
    model = EVENT_MODELS.get(type)
    if model is None:
        return Unknown(type=type, payload=data)
    return model.model_validate(data)


def validate_new(type: str, data: dict[str, Any]) -> NewEvent:
    """A new event given as type and data, checked against its model (unknown type → error)."""
    model = EVENT_MODELS.get(type)
    if model is None:
        raise ValueError(f"Unknown event type {type!r}: add its model to codeyard.domain.events.")
    return model.model_validate(data)


def try_parse_event(type: str, data: dict[str, Any]) -> tuple[NewEvent | None, str | None]:
    """``(model, None)``, or ``(None, why)`` when the data does not fit the type's model."""
    try:
        return parse_event(type, data), None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "data"
        return None, f"{where}: {first['msg']}"


def tail(text: str, limit: int = OUTPUT_LIMIT) -> str:
    """The end of ``text`` within ``limit`` characters (an ellipsis marks the cut)."""
    return text if len(text) <= limit else "…" + text[-limit:]


def tool_result(
    call_id: str,
    *,
    ok: bool,
    output: str = "",
    error: str | None = None,
    exit_code: int | None = None,
    duration_ms: int = 0,
) -> ToolResult:
    """The one way every provider and the executor report a tool's outcome.

    Output and error keep their last ``OUTPUT_LIMIT`` characters (the full output is in the
    run's raw log); ``duration_ms`` is 0 where the agent reports no per-call duration.
    """
    return ToolResult(
        call_id=call_id,
        ok=ok,
        output=tail(output),
        error=None if error is None else tail(error),
        exit_code=exit_code,
        duration_ms=duration_ms,
    )


_second: tuple[int, str] = (-1, "")  # the last whole second seen, formatted


def utc_now() -> str:
    """Timestamps are ISO-8601 UTC with millisecond precision and a ``Z``.

    Called for every appended event, so the seconds part is formatted once per second.
    """
    global _second
    now = time.time()
    sec = int(now)
    cached = _second  # one read of an immutable pair: safe from any thread
    if cached[0] != sec:
        cached = _second = (sec, datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    return f"{cached[1]}.{int((now - sec) * 1000):03d}Z"


@dataclass(slots=True)
class StoredEvent:
    id: int
    run_id: str
    project_id: str
    seq: int
    type: str
    ts: str
    data_json: str
    _json: str | None = None
    _frame: bytes | None = field(default=None, compare=False, repr=False)

    @property
    def data(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.data_json)
        return result

    @property
    def event(self) -> NewEvent:
        """The typed event (see :func:`parse_event`, which raises on data that does not fit)."""
        return parse_event(self.type, self.data)

    @property
    def json(self) -> str:
        """The event as the API shows it, built from already-serialized parts."""
        if self._json is None:
            self._json = (
                f'{{"id":{self.id},"run_id":"{self.run_id}","seq":{self.seq},'
                f'"type":"{self.type}","ts":"{self.ts}","data":{self.data_json}}}'
            )
        return self._json

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "run_id": self.run_id,
            "seq": self.seq,
            "type": self.type,
            "ts": self.ts,
            "data": self.data,
        }

    def sse_frame(self) -> str:
        return f"id: {self.id}\nevent: {self.type}\ndata: {self.json}\n\n"

    @property
    def sse_bytes(self) -> bytes:
        """``sse_frame()`` encoded, made once and shared by every stream sending this event."""
        if self._frame is None:
            self._frame = self.sse_frame().encode()
        return self._frame
