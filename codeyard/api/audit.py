"""``/api/audit-log``: who changed settings that act in every user's runs (admins only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from codeyard.api.auth import require_scope
from codeyard.api.deps import Cursor, Limit, Svc, listing
from codeyard.store import audit

router = APIRouter(tags=["settings"])


class AuditEntry(BaseModel):
    id: int
    actor: str
    action: str
    object_id: str
    details: dict[str, Any]
    created_at: str


class AuditPage(BaseModel):
    data: list[AuditEntry]
    next_cursor: str | None


@router.get("/audit-log", response_model=AuditPage, dependencies=[require_scope("admin")])
async def audit_log(svc: Svc, limit: Limit = 50, cursor: Cursor = None) -> dict[str, Any]:
    """Changes to repository setup/cleanup scripts and copied files, newest first: the user
    (``actor``; ``admin`` for the admin token), the field (``action``), old and new values."""
    async with svc.engine.connect() as conn:
        rows, next_cursor = await audit.list_page(conn, limit, cursor)
    return listing(list(rows), next_cursor)
