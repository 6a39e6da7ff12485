"""Claude Code hook ingestion (CodePiper's ``POST /hooks/claude``, Abbado's
``POST /api/runs/{id}/hook``): see ``services.hook_ingest``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body
from pydantic import BaseModel, Field

from codeyard.api.auth import require_scope
from codeyard.api.deps import Svc
from codeyard.services import hook_ingest

router = APIRouter(tags=["runs"])
Payload = Body(
    description="The hook's JSON as Claude Code passes it on stdin (hook_event_name, "
    "session_id, tool_name, tool_input, tool_use_id, tool_response, prompt)."
)


class HookResult(BaseModel):
    run_id: str
    hook: str | None
    recorded: list[str] = Field(description="Event types appended to the run's log.")


@router.post(
    "/runs/{run_ref}/hook", dependencies=[require_scope("runs:write")], response_model=HookResult
)
async def run_hook(run_ref: str, svc: Svc, payload: dict[str, Any] = Payload) -> HookResult:
    """Record one Claude Code hook call on a run whose CLI runs outside Codeyard."""
    return HookResult(**await hook_ingest.ingest(svc, run_ref, payload))


@router.post("/hooks/claude", dependencies=[require_scope("runs:write")], response_model=HookResult)
async def claude_hook(
    svc: Svc, run: str | None = None, payload: dict[str, Any] = Payload
) -> HookResult:
    """The same, with the run named by ``?run=`` or found by the payload's ``session_id``."""
    return HookResult(**await hook_ingest.ingest(svc, run, payload))
