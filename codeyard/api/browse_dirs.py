"""``GET /api/settings/browse``: the server's directories, to pick a repository (admin only)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from codeyard.api.auth import require_scope
from codeyard.workspace.directories import list_directories

router = APIRouter(tags=["settings"])


class DirectoryEntry(BaseModel):
    name: str
    path: str
    is_git_repo: bool


class DirectoryListing(BaseModel):
    path: str
    parent: str | None
    is_git_repo: bool
    entries: list[DirectoryEntry]
    truncated: bool


@router.get(
    "/settings/browse", response_model=DirectoryListing, dependencies=[require_scope("admin")]
)
async def browse_directories(
    path: Annotated[
        str | None, Query(max_length=4096, description="An absolute path; default: home.")
    ] = None,
    hidden: Annotated[bool, Query(description="Include directories starting with '.'.")] = False,
) -> dict[str, Any]:
    """Subdirectories of ``path`` with ``is_git_repo``; 404 when missing, 400 for a file."""
    return await asyncio.to_thread(list_directories, path, hidden)
