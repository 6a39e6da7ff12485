"""``GET /api/workers``: the hosts that execute runs, what they can serve, and their health."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from codeyard.api.auth import require_scope
from codeyard.api.deps import Svc
from codeyard.store import workers as store
from codeyard.workers import registry

router = APIRouter(tags=["workers"])


class ProviderCapability(BaseModel):
    available: bool
    version: str | None = None


class WorkerCapabilities(BaseModel):
    providers: dict[str, ProviderCapability] = Field(
        description="Agent CLIs by provider name: installed (available) and their versions."
    )
    repos_cached: list[str] = Field(description="Ids of repositories cloned on this host.")


class WorkerView(BaseModel):
    id: str = Field(description="host:pid:kind, unique per worker process.")
    host: str
    kind: str = Field(description="local (the server's own executor) or a distributed worker.")
    capabilities: WorkerCapabilities
    slots: int
    free_slots: int
    started_at: str
    heartbeat_at: str
    heartbeat_age_seconds: float
    health: Literal["healthy", "unhealthy"] = Field(
        description=f"unhealthy once the heartbeat is older than {registry.STALE_AFTER:g} s."
    )


class WorkerList(BaseModel):
    items: list[WorkerView]


@router.get("/workers", dependencies=[require_scope("settings:read")], response_model=WorkerList)
async def list_workers(svc: Svc) -> Any:
    """Every registered worker with its capabilities and heartbeat health."""
    async with svc.engine.connect() as conn:
        rows = await store.list_all(conn)
    now = datetime.now(UTC)
    return {"items": [registry.with_health(r, now) for r in rows]}
