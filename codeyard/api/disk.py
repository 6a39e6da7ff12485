"""Disk usage of worktrees and reclaiming it: ``GET /api/disk-usage``, ``POST /api/gc``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from codeyard.api.auth import require_scope
from codeyard.api.deps import Svc
from codeyard.api.meta_views import DiskUsageView, GcView
from codeyard.services import retention

router = APIRouter(tags=["disk"])


class GcBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    older_than_days: int | None = Field(
        default=None,
        ge=0,
        le=36500,
        description="Reclaim runs finished this many days ago (default: retention_days).",
    )
    dry_run: bool = Field(default=False, description="Only report what would be freed.")


@router.get(
    "/disk-usage", dependencies=[require_scope("settings:read")], response_model=DiskUsageView
)
async def disk_usage(svc: Svc) -> dict[str, Any]:
    """Bytes per project and run; ``reclaimable`` marks what the next retention pass frees."""
    return await retention.disk_usage(svc)


@router.post("/gc", dependencies=[require_scope("admin")], response_model=GcView)
async def collect(svc: Svc, body: GcBody | None = None) -> dict[str, Any]:
    """Remove worktrees of long-finished runs now (unmerged branches are kept).

    Without ``older_than_days`` and with ``retention_days`` unset, nothing is removed.
    """
    body = body or GcBody()
    return await retention.gc(svc, body.older_than_days, dry_run=body.dry_run)
