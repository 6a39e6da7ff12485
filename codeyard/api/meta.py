"""Health and what this build can run."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter

from codeyard import __version__, pricing
from codeyard.agents import registry
from codeyard.api.auth import require_scope
from codeyard.api.deps import Svc
from codeyard.api.meta_views import HealthView, ModelView, ProviderView
from codeyard.api.views import Page
from codeyard.domain.errors import ValidationFailed
from codeyard.services import auth as auth_service

public = APIRouter()
router = APIRouter()


@public.get("/health", response_model=HealthView)
async def health(svc: Svc) -> dict[str, Any]:
    """Public liveness and set-up state."""
    return {
        "status": "ok",
        "version": __version__,
        "database": svc.database,
        "setup_required": await auth_service.setup_required(svc),
    }


@router.get(
    "/providers", dependencies=[require_scope("settings:read")], response_model=Page[ProviderView]
)
async def providers() -> dict[str, Any]:
    """Agent providers of this build, whether each can run here, and the fix when not."""
    # Probing the CLIs runs them (once per process, cached): never on the event loop.
    return {"data": await anyio.to_thread.run_sync(registry.describe_all), "next_cursor": None}


@router.get(
    "/models", dependencies=[require_scope("settings:read")], response_model=Page[ModelView]
)
async def models(provider: str | None = None) -> dict[str, Any]:
    """Known models with their prices (US dollars per token), from the vendored price map.

    ``provider`` is a Codeyard provider (``claude-code`` → Anthropic models, ``codex`` → OpenAI,
    ``gemini`` → Gemini; ``copilot``, ``opencode``, ``qwen``, ``acp`` and ``script`` → all).
    """
    provider = provider or None  # ``?provider=`` (empty) lists every model
    if provider is not None and provider not in pricing.VENDORS:
        valid = sorted(pricing.VENDORS)
        raise ValidationFailed(
            f"Unknown provider '{provider}'. Valid providers: {', '.join(valid)}.",
            errors=[{"loc": ["query", "provider"], "msg": f"unknown provider '{provider}'"}],
            valid=valid,
        )
    return {"data": [m.as_dict() for m in pricing.models(provider)], "next_cursor": None}
