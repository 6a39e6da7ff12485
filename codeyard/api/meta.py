"""Health and what this build can run."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from codeyard import __version__
from codeyard.agents import registry
from codeyard.api.deps import Svc

public = APIRouter()
router = APIRouter()


@public.get("/health")
async def health(svc: Svc) -> dict[str, Any]:
    """Public liveness and set-up state."""
    return {
        "status": "ok",
        "version": __version__,
        "database": svc.database,
        "setup_required": False,
    }


@router.get("/providers")
async def providers() -> dict[str, Any]:
    """Agent providers of this build, whether each can run here, and the fix when not."""
    return {"data": registry.describe_all(), "next_cursor": None}
