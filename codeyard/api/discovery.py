"""Discovery conversations of a project (issue 19): thin routes over
``codeyard.discovery.service``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Response
from pydantic import Field

from codeyard.api.auth import Caller, require_scope
from codeyard.api.deps import Cursor, Limit, Svc, listing
from codeyard.api.schemas import Body
from codeyard.api.views import Page, View
from codeyard.discovery import service

router = APIRouter(tags=["discovery"])
BASE = "/projects/{project_ref}/discover/conversations"
Id = Annotated[str, Path(max_length=40, description="The conversation's id.")]
READ, WRITE = require_scope("runs:read"), require_scope("runs:write")


class ConversationCreate(Body):
    question: str = Field(
        min_length=1,
        max_length=20_000,
        examples=["Where is the CSV export slow, and what should we change?"],
    )
    agent_id: str | None = Field(default=None, description="An agent profile (GET /api/agents).")
    provider: str | None = None
    model: str | None = None
    agent_options: dict[str, Any] | None = Field(
        default=None, description="The provider's options; never its permission mode."
    )
    budget_usd: float | None = Field(default=None, ge=0)


class ConversationMessage(Body):
    text: str = Field(min_length=1, max_length=200_000)


class ActionDecision(Body):
    decision: Literal["accept", "reject"]
    #: For an accepted ``start_run``: its agent (else the server's default); a normal run.
    agent_id: str | None = None
    provider: str | None = None
    model: str | None = None
    agent_options: dict[str, Any] | None = None
    budget_usd: float | None = Field(default=None, ge=0)


class ActionView(View):
    id: str
    #: ``create_ticket`` (title, body, kind, priority) or ``start_run`` (title, prompt).
    type: Literal["create_ticket", "start_run"]
    title: str
    body: str | None = None
    kind: str | None = None
    priority: str | None = None
    prompt: str | None = None
    #: ``proposed``, ``accepted`` or ``rejected``.
    state: str
    #: What accepting made.
    ticket_number: int | None
    run_id: str | None


class ConversationView(View):
    id: str
    project_id: str
    #: The read-only run (``safe_mode``: plan permission mode); stream it like any run.
    run_id: str
    run_number: int
    run_status: str
    question: str
    #: Read from the run's newest finished turn; decided actions stay as they were.
    actions: list[ActionView]
    read_turn: int
    #: Why the newest answer proposed nothing readable (``null``: it was read fine).
    actions_error: str | None
    created_by: str | None
    created_at: str
    updated_at: str


@router.post(BASE, dependencies=[WRITE], status_code=201, response_model=ConversationView)
async def start_conversation(
    project_ref: str, body: ConversationCreate, svc: Svc, principal: Caller
) -> dict[str, Any]:
    """A read-only agent run over the project's repositories (file edits denied, commands
    asked) that answers the question and proposes actions."""
    return await service.start(svc, principal, project_ref, body.model_dump())


@router.get(BASE, dependencies=[READ], response_model=Page[ConversationView])
async def list_conversations(
    project_ref: str, svc: Svc, limit: Limit = 50, cursor: Cursor = None
) -> dict[str, Any]:
    """Newest first (actions as last read; GET one to read a newer answer in)."""
    rows, next_cursor = await service.list_page(svc, project_ref, limit, cursor)
    return listing(list(rows), next_cursor)


@router.get(f"{BASE}/{{conversation_id}}", dependencies=[READ], response_model=ConversationView)
async def get_conversation(project_ref: str, conversation_id: Id, svc: Svc) -> dict[str, Any]:
    """The conversation, with the actions of the run's newest finished turn."""
    return await service.get(svc, project_ref, conversation_id)


@router.post(
    f"{BASE}/{{conversation_id}}/messages", dependencies=[WRITE], response_model=ConversationView
)
async def continue_conversation(
    project_ref: str, conversation_id: Id, body: ConversationMessage, svc: Svc, principal: Caller
) -> dict[str, Any]:
    """A follow-up: the run's next turn, still read-only."""
    return await service.message(svc, principal, project_ref, conversation_id, body.text)


@router.post(
    f"{BASE}/{{conversation_id}}/actions/{{action_id}}",
    dependencies=[WRITE],
    response_model=ConversationView,
)
async def decide_action(
    project_ref: str,
    conversation_id: Id,
    action_id: Annotated[str, Path(max_length=40)],
    body: ActionDecision,
    svc: Svc,
    principal: Caller,
) -> dict[str, Any]:
    """Accept (create the ticket, or start the run as an ordinary run of the project) or
    reject one proposed action; 409 once decided."""
    run_options = body.model_dump(exclude={"decision"}, exclude_none=True)
    return await service.decide(
        svc,
        principal,
        project_ref,
        conversation_id,
        action_id,
        body.decision == "accept",
        run_options,
    )


@router.delete(f"{BASE}/{{conversation_id}}", dependencies=[WRITE], status_code=204)
async def delete_conversation(
    project_ref: str, conversation_id: Id, svc: Svc, principal: Caller
) -> Response:
    """Forget the conversation; its run and what it led to stay."""
    await service.delete(svc, principal, project_ref, conversation_id)
    return Response(status_code=204)
