"""``GET/PUT /api/runs/{id}/model``: which model the run's next turn uses."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from codeyard.api.auth import require_scope
from codeyard.api.deps import Svc
from codeyard.services import run_model as service

router = APIRouter(tags=["runs"])


class ModelView(BaseModel):
    run_id: str
    provider: str
    model: str | None = Field(description="null: the provider's default model.")
    applies: Literal["now", "next_model_call", "next_turn"] = Field(
        description=(
            "When the model takes effect: now (no turn running); next_model_call (the running "
            "agent switches before its next model call, run.model_applied follows); next_turn "
            "(the running turn keeps its model)."
        )
    )


class ModelUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str | None = Field(
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@\[\]-]*$",
        description="Model id as the provider's CLI takes it; null for its default.",
        examples=["claude-sonnet-4-5", "gpt-5-codex"],
    )


@router.get(
    "/runs/{run_ref}/model", response_model=ModelView, dependencies=[require_scope("runs:read")]
)
async def get_model(run_ref: str, svc: Svc) -> dict[str, Any]:
    return await service.get(svc, run_ref)


@router.put(
    "/runs/{run_ref}/model", response_model=ModelView, dependencies=[require_scope("runs:control")]
)
async def put_model(run_ref: str, body: ModelUpdate, svc: Svc) -> dict[str, Any]:
    """Switch the run's model: mid-turn where the agent can (Claude Code), else from the next
    turn (``run.model_changed`` says which; ``run.model_applied`` when the agent took it)."""
    return await service.switch(svc, run_ref, body.model)
