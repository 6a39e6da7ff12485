"""A run's changed files with their diffs, and one shell command in full with short-lived
download links (the Laravel seed's ``/runs/{run}/files`` and ``/runs/{run}/commands/{id}``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from codeyard.api.auth import require_scope
from codeyard.api.deps import Svc
from codeyard.services import run_files

router = APIRouter(tags=["runs"])
#: The download link is its own credential (a sealed, expiring token): public by design.
public = APIRouter(tags=["runs"])


class ChangedFile(BaseModel):
    path: str
    old_path: str | None = None
    status: str
    additions: int
    deletions: int
    binary: bool
    repo_id: str | None = None


class ChangedFiles(BaseModel):
    run_id: str
    data: list[ChangedFile]


class FileDiff(ChangedFile):
    run_id: str
    hunks: list[dict[str, Any]]
    patch: str = Field(description="The file's unified diff.")


class CommandDetail(BaseModel):
    run_id: str
    call_id: str
    command: str | None
    title: str | None
    started_at: str
    finished_at: str | None
    exit_code: int | None
    duration_ms: int | None
    ok: bool | None
    output: str | None = Field(description="What the command printed, as recorded.")
    output_truncated: bool = Field(
        description="The event log kept only the end; the raw log (/logs) has all of it."
    )
    error: str | None
    downloads: dict[str, str] = Field(
        description="Links to the output and error text that need no token; they expire."
    )
    downloads_expire_in: int = Field(description="Seconds the download links stay valid.")


@router.get(
    "/runs/{run_ref}/files", dependencies=[require_scope("runs:read")], response_model=ChangedFiles
)
async def list_files(run_ref: str, svc: Svc) -> ChangedFiles:
    """Files the run changed against its base commit."""
    return ChangedFiles(**await run_files.files(svc, run_ref))


@router.get(
    "/runs/{run_ref}/files/{path:path}",
    dependencies=[require_scope("runs:read")],
    response_model=FileDiff,
)
async def file_detail(run_ref: str, path: str, svc: Svc, repo_id: str | None = None) -> FileDiff:
    """One changed file with its hunks and unified diff (404 when it did not change)."""
    return FileDiff(**await run_files.file(svc, run_ref, path, repo_id))


@router.get(
    "/runs/{run_ref}/commands/{call_id}",
    dependencies=[require_scope("runs:read")],
    response_model=CommandDetail,
)
async def command_detail(run_ref: str, call_id: str, svc: Svc) -> CommandDetail:
    """A shell command with its full recorded output and signed, short-lived download links."""
    return CommandDetail(**await run_files.command(svc, run_ref, call_id))


@public.get("/command-output/{token}", response_class=PlainTextResponse)
async def command_output(token: str, svc: Svc) -> PlainTextResponse:
    """A command's output through a download link (403 when altered or expired)."""
    name, text = await run_files.download(svc, token)
    return PlainTextResponse(
        text, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )
