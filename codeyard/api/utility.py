"""The utility model: its setting, natural language → shell, and run name suggestions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from codeyard.api.auth import Caller, require_scope
from codeyard.api.deps import Svc
from codeyard.api.terminals import manager
from codeyard.services import utility as service
from codeyard.utility_model import UtilityModelConfig

router = APIRouter(tags=["utility model"])


class UtilityUsage(BaseModel):
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None


class UtilityModelView(BaseModel):
    config: UtilityModelConfig | None = Field(description="null: no utility model configured.")
    usage: UtilityUsage


class UtilityModelUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    config: UtilityModelConfig | None


class AskIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    terminal_id: str | None = Field(default=None, description="Paste the command here.")
    run_id: str | None = Field(default=None, description="Only suggest, for this run.")
    text: str = Field(min_length=1, max_length=2000, examples=["list the 5 largest files"])


class Verdict(BaseModel):
    action: str = Field(description="allow, ask or deny under the run's policies.")
    rule: str
    reason: str


class AskOut(BaseModel):
    command: str
    explanation: str
    verdict: Verdict
    inserted: bool = Field(
        description="Pasted into the terminal (bracketed paste, no Enter): never executed."
    )
    terminal_id: str | None
    attempts: int


class NamesOut(BaseModel):
    run_id: str
    title: str
    branch: str
    attempts: int


async def _view(svc: Svc) -> UtilityModelView:
    return UtilityModelView(
        config=await service.get_config(svc), usage=UtilityUsage(**await service.usage(svc))
    )


@router.get(
    "/settings/utility-model",
    response_model=UtilityModelView,
    dependencies=[require_scope("settings:read")],
)
async def get_utility_model(svc: Svc) -> UtilityModelView:
    """The helper model used for names, NL → shell and other small tasks, and its spend."""
    return await _view(svc)


@router.put(
    "/settings/utility-model",
    response_model=UtilityModelView,
    dependencies=[require_scope("settings:write")],
)
async def put_utility_model(body: UtilityModelUpdate, svc: Svc) -> UtilityModelView:
    """Set (or clear with ``{"config": null}``) the utility model; the key stays in an env set."""
    await service.set_config(svc, body.config)
    return await _view(svc)


@router.post("/terminals/ask", response_model=AskOut, dependencies=[require_scope("runs:control")])
async def ask(body: AskIn, caller: Caller, svc: Svc, request: Request) -> dict[str, Any]:
    """Natural language → one shell command, judged by the run's policies, pasted into the
    terminal with bracketed paste (never with Enter) unless the policy denies it."""
    return await service.ask_shell(
        svc,
        manager(request),
        caller,
        terminal_id=body.terminal_id,
        run_ref=body.run_id,
        text=body.text,
    )


@router.post(
    "/runs/{run_ref}/suggest-names",
    response_model=NamesOut,
    dependencies=[require_scope("runs:write")],
)
async def suggest_names(run_ref: str, caller: Caller, svc: Svc) -> dict[str, Any]:
    """A title and branch name for the run from the utility model (nothing is renamed)."""
    return await service.suggest_names(svc, caller, run_ref)
