"""Workflows (issue 20): definitions, executions, approvals of workflow steps. Thin: each route
is one call into :mod:`codeyard.services.workflows` (definitions),
:mod:`~codeyard.services.workflow_executions` or :mod:`~codeyard.services.workflow_dry_run`."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sse_starlette import EventSourceResponse

from codeyard.api.auth import Caller, require_scope
from codeyard.api.deps import Svc
from codeyard.api.schemas import Body
from codeyard.services import workflow_dry_run as dry_run
from codeyard.services import workflow_executions as executions
from codeyard.services import workflows as service
from codeyard.workflows import model
from codeyard.workflows.engine import WorkflowEngine


async def _ready(request: Request) -> None:
    """On a server just started the engine may start a moment after the first request
    (``codeyard.background``); its start marks executions a crash stranded ``interrupted``, so
    every route here waits for it, readers too: none shows a dead execution as running."""
    await request.app.state.background.ready()


router = APIRouter(prefix="/workflows", tags=["workflows"], dependencies=[Depends(_ready)])


async def _engine(request: Request) -> WorkflowEngine:
    eng: WorkflowEngine = request.app.state.workflows
    return eng


Engine = Annotated[WorkflowEngine, Depends(_engine)]


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class WorkflowSource(Body):
    """A definition as ``source`` (YAML or JSON text, as in ``.codeyard/workflows/*.yaml``) or
    as ``definition`` (an object)."""

    source: str | None = Field(None, max_length=512 * 1024)
    definition: dict[str, Any] | None = None


class WorkflowLoad(Body):
    repo_path: str | None = None
    project_id: str | None = None


class ExecuteBody(Body):
    variables: dict[str, Any] = Field(default_factory=dict)
    repo_path: str | None = Field(None, description="Where run steps work (a local work tree).")
    project_id: str | None = None
    repo_ids: list[str] | None = None
    budget_usd: float | None = Field(None, gt=0, description="Overrides the workflow's budget.")


class ValidateBody(WorkflowSource):
    variables: dict[str, Any] | None = None
    repo_path: str | None = None
    project_id: str | None = None


class DecideBody(Body):
    decision: Literal["approve", "reject"]
    reason: str | None = Field(None, max_length=10_000)


class VersionView(_View):
    version: int
    created_at: str


class WorkflowView(_View):
    id: str
    name: str
    description: str | None
    version: int
    definition: dict[str, Any]
    source: str
    origin: str | None
    owner_id: str | None
    created_at: str
    updated_at: str
    versions: list[VersionView] | None = None


class WorkflowList(_View):
    data: list[WorkflowView]


class StepStateView(_View):
    key: str
    status: str
    run_id: str | None
    output: dict[str, Any] | None
    error: str | None
    attempts: int = Field(1, description="Attempts made (more than 1 after a retry).")


class PendingApprovalView(_View):
    key: str
    attempt: int


class ExecutionView(_View):
    id: str
    workflow_id: str
    workflow_version: int
    status: str
    status_reason: str | None
    definition: dict[str, Any]
    definition_hash: str
    inputs: dict[str, Any]
    target: dict[str, Any]
    budget_usd: float | None
    spent_usd: float
    outputs: dict[str, Any]
    created_by: str | None
    created_at: str
    updated_at: str
    finished_at: str | None
    steps: list[StepStateView] | None = None
    pending_approvals: list[PendingApprovalView] | None = None
    graph: dict[str, Any] | None = None


class ExecutionStarted(ExecutionView):
    execution_id: str


class ExecutionList(_View):
    data: list[ExecutionView]


class WorkflowEventView(_View):
    seq: int
    type: str
    ts: str
    data: dict[str, Any]


class WorkflowEventList(_View):
    data: list[WorkflowEventView]
    #: Pass as ``?after=`` for what came next.
    last_seq: int


class ValidationView(_View):
    valid: bool
    problems: list[dict[str, Any]]
    graph: dict[str, Any]
    run_steps: list[dict[str, Any]]
    target: dict[str, Any] | None
    estimate: dict[str, Any]


class JsonSchemaView(_View):
    model_config = ConfigDict(frozen=True, extra="allow")


READ, WRITE, CONTROL = (
    require_scope("runs:read"),
    require_scope("runs:write"),
    require_scope("runs:control"),
)
Status = Annotated[str | None, Query(description="Comma-separated: running, waiting, …")]
Limit = Annotated[int, Query(ge=1, le=500)]


@router.get("/schema", dependencies=[READ], response_model=JsonSchemaView)
async def workflow_schema() -> dict[str, Any]:
    """The JSON Schema of a definition: point an editor's ``$schema`` at it for completion."""
    return model.json_schema()


@router.get("", dependencies=[READ], response_model=WorkflowList)
async def list_workflows(svc: Svc) -> dict[str, Any]:
    return {"data": await service.list_all(svc)}


@router.post("", dependencies=[WRITE], status_code=201, response_model=WorkflowView)
async def create_workflow(body: WorkflowSource, svc: Svc, principal: Caller) -> dict[str, Any]:
    """Save a definition (version 1); 422 lists every problem with its location."""
    return await service.create(svc, body.data(), principal)


@router.post("/load", dependencies=[WRITE], response_model=WorkflowList)
async def load_workflows(body: WorkflowLoad, svc: Svc, principal: Caller) -> dict[str, Any]:
    """Create or update (new version) each ``.codeyard/workflows/*.yaml`` of a repository."""
    return {"data": await service.load_from_repo(svc, body.data(), principal)}


@router.post("/validate", dependencies=[READ], response_model=ValidationView)
async def validate_draft(body: ValidateBody, svc: Svc) -> dict[str, Any]:
    """The dry run of an unsaved definition (the editor's inline check)."""
    return await dry_run.validate(svc, body.data(), None)


@router.get("/executions/{execution_id}", dependencies=[READ], response_model=ExecutionView)
async def get_execution(execution_id: str, svc: Svc) -> dict[str, Any]:
    """An execution with each step's state, pending approvals and the resolved graph."""
    return await executions.get_execution(svc, execution_id)


@router.get(
    "/executions/{execution_id}/events", dependencies=[READ], response_model=WorkflowEventList
)
async def execution_events(
    execution_id: str, svc: Svc, after: Annotated[int, Query(ge=0)] = 0, limit: Limit = 500
) -> dict[str, Any]:
    """The execution's ``workflow.*`` events after ``after`` (poll with the last ``seq``)."""
    data = await executions.events(svc, execution_id, after, limit)
    return {"data": data, "last_seq": data[-1]["seq"] if data else after}


async def _frames(
    eng: WorkflowEngine, execution_id: str, after: int
) -> AsyncIterator[dict[str, Any]]:
    async for event in eng.follow(execution_id, after):
        yield {"id": str(event["seq"]), "event": event["type"], "data": json.dumps(event)}


@router.get(
    "/executions/{execution_id}/events/stream",
    dependencies=[READ],
    response_class=EventSourceResponse,
)
async def execution_stream(
    execution_id: str,
    svc: Svc,
    eng: Engine,
    last_event_id: Annotated[str | None, Header()] = None,
    after: Annotated[int, Query(ge=0)] = 0,
) -> EventSourceResponse:
    """SSE of the execution's ``workflow.*`` events: replay after ``Last-Event-ID`` (or
    ``?after=``, a ``seq``), then live; the stream ends after the execution has ended."""
    await executions.events(svc, execution_id, 0, 1)  # 404 for an unknown execution
    start = int(last_event_id) if last_event_id and last_event_id.isdigit() else after
    return EventSourceResponse(_frames(eng, execution_id, start), ping=15)


@router.post(
    "/executions/{execution_id}/cancel", dependencies=[CONTROL], response_model=ExecutionView
)
async def cancel_execution(
    execution_id: str, svc: Svc, eng: Engine, principal: Caller
) -> dict[str, Any]:
    """Stop every running step (their runs are cancelled) and end the execution."""
    return await executions.cancel(svc, eng, execution_id, principal)


@router.post(
    "/executions/{execution_id}/resume", dependencies=[CONTROL], response_model=ExecutionView
)
async def resume_execution(
    execution_id: str, svc: Svc, eng: Engine, principal: Caller
) -> dict[str, Any]:
    """Continue an interrupted execution from its log; completed steps are not run again."""
    return await executions.resume(svc, eng, execution_id, principal)


@router.post(
    "/executions/{execution_id}/steps/{key:path}/decide",
    dependencies=[require_scope("approvals:resolve")],
    response_model=ExecutionView,
)
async def decide_step(
    execution_id: str, key: str, body: DecideBody, svc: Svc, eng: Engine, principal: Caller
) -> dict[str, Any]:
    """Approve or reject an approval step; a rejection's reason goes back to the run step."""
    return await executions.decide(svc, eng, execution_id, key, body.data(), principal)


@router.get("/{workflow_id}", dependencies=[READ], response_model=WorkflowView)
async def get_workflow(workflow_id: str, svc: Svc) -> dict[str, Any]:
    return await service.get(svc, workflow_id)


@router.put("/{workflow_id}", dependencies=[WRITE], response_model=WorkflowView)
async def update_workflow(
    workflow_id: str, body: WorkflowSource, svc: Svc, principal: Caller
) -> dict[str, Any]:
    """A new version; running executions keep the snapshot they started with."""
    return await service.update(svc, workflow_id, body.data(), principal)


@router.delete("/{workflow_id}", dependencies=[WRITE], status_code=204)
async def delete_workflow(workflow_id: str, svc: Svc, principal: Caller) -> Response:
    await service.delete(svc, workflow_id, principal)
    return Response(status_code=204)


@router.post(
    "/{workflow_id}/execute",
    dependencies=[WRITE],
    status_code=202,
    response_model=ExecutionStarted,
)
async def execute_workflow(
    workflow_id: str, body: ExecuteBody, svc: Svc, eng: Engine, principal: Caller
) -> dict[str, Any]:
    """Start an execution; it runs in the background (poll or read its events)."""
    started = await executions.execute(svc, eng, workflow_id, body.data(), principal)
    return {**started, "execution_id": started["id"]}


@router.post("/{workflow_id}/validate", dependencies=[READ], response_model=ValidationView)
async def validate_workflow(workflow_id: str, body: ValidateBody, svc: Svc) -> dict[str, Any]:
    """Static check, resolved graph, profiles and repos, cost estimate from history."""
    return await dry_run.validate(svc, body.data(), workflow_id)


@router.get("/{workflow_id}/executions", dependencies=[READ], response_model=ExecutionList)
async def list_executions(
    workflow_id: str, svc: Svc, status: Status = None, limit: Limit = 50
) -> dict[str, Any]:
    statuses = status.split(",") if status else None
    return {"data": await executions.list_executions(svc, workflow_id, statuses, limit)}


@router.get(
    "/{workflow_id}/executions/{execution_id}", dependencies=[READ], response_model=ExecutionView
)
async def get_nested_execution(workflow_id: str, execution_id: str, svc: Svc) -> dict[str, Any]:
    return await executions.get_execution(svc, execution_id, workflow_id)


@router.post(
    "/{workflow_id}/executions/{execution_id}/cancel",
    dependencies=[CONTROL],
    response_model=ExecutionView,
)
async def cancel_nested_execution(
    workflow_id: str, execution_id: str, svc: Svc, eng: Engine, principal: Caller
) -> dict[str, Any]:
    await executions.get_execution(svc, execution_id, workflow_id)
    return await executions.cancel(svc, eng, execution_id, principal)
