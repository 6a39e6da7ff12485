"""Runs: create, list, read, control. Each route is one service call."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Response, UploadFile

from codeyard.api.auth import Caller, require_scope
from codeyard.api.deps import Cursor, Limit, Svc, listing
from codeyard.api.schemas import FollowUpBody, MessageBody, ResumeBody, RunCreate
from codeyard.api.views import Page, RunView
from codeyard.attachments import images as image_files
from codeyard.services import runs as run_service
from codeyard.store import runs

router = APIRouter(prefix="/runs", tags=["runs"])


@router.post(
    "", dependencies=[require_scope("runs:write")], status_code=201, response_model=RunView
)
async def create_run(body: RunCreate, svc: Svc, principal: Caller) -> dict[str, Any]:
    """Create a run; it is queued at once unless ``draft`` is true."""
    return await run_service.create(svc, body.data(), principal)


@router.get("", dependencies=[require_scope("runs:read")], response_model=Page[RunView])
async def list_runs(
    svc: Svc,
    status: Annotated[str | None, Query(description="Comma-separated statuses.")] = None,
    project_id: str | None = None,
    provider: str | None = None,
    archived: bool = False,
    q: Annotated[str | None, Query(description="Search in titles and prompts.")] = None,
    workspace_id: Annotated[
        str | None, Query(max_length=40, description="Only runs started in this workspace.")
    ] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """Runs, newest first."""
    async with svc.engine.connect() as conn:
        rows, next_cursor = await runs.list_records(
            conn,
            status=status.split(",") if status else None,
            project_id=project_id,
            provider=provider,
            archived=archived,
            q=q,
            limit=limit,
            cursor=cursor,
            workspace_id=workspace_id,
        )
    return listing([r.model_dump() for r in rows], next_cursor)


@router.get("/{run_ref}", dependencies=[require_scope("runs:read")], response_model=RunView)
async def get_run(run_ref: str, svc: Svc) -> dict[str, Any]:
    """A run by id (``run_…``) or number."""
    return (await run_service.get_record(svc, run_ref)).model_dump()


@router.delete("/{run_ref}", dependencies=[require_scope("runs:control")], status_code=204)
async def delete_run(run_ref: str, svc: Svc) -> Response:
    """Delete an idle run with its worktrees, branch and events (409 while active)."""
    await run_service.delete(svc, run_ref)
    return Response(status_code=204)


@router.post(
    "/{run_ref}/start", dependencies=[require_scope("runs:control")], response_model=RunView
)
async def start_run(run_ref: str, svc: Svc) -> dict[str, Any]:
    """Queue a draft run."""
    return await run_service.start(svc, run_ref)


@router.post(
    "/{run_ref}/cancel", dependencies=[require_scope("runs:control")], response_model=RunView
)
async def cancel_run(run_ref: str, svc: Svc) -> dict[str, Any]:
    return await run_service.cancel(svc, run_ref)


@router.post(
    "/{run_ref}/pause", dependencies=[require_scope("runs:control")], response_model=RunView
)
async def pause_run(run_ref: str, svc: Svc) -> dict[str, Any]:
    """Stop the agent, keeping its session and worktree; ``resume`` continues."""
    return await run_service.pause(svc, run_ref)


@router.post(
    "/{run_ref}/resume", dependencies=[require_scope("runs:control")], response_model=RunView
)
async def resume_run(run_ref: str, svc: Svc, body: ResumeBody | None = None) -> dict[str, Any]:
    return await run_service.resume(svc, run_ref, body.message if body else None)


@router.post(
    "/{run_ref}/messages",
    dependencies=[require_scope("runs:write")],
    status_code=202,
    response_model=RunView,
)
async def send_message(run_ref: str, body: MessageBody, svc: Svc) -> dict[str, Any]:
    """An operator message: answers a waiting agent, is queued mid-turn, or starts a new turn."""
    return await run_service.message(svc, run_ref, body.text, images=body.images)


@router.post(
    "/{run_ref}/messages/upload",
    dependencies=[require_scope("runs:write")],
    status_code=202,
    response_model=RunView,
)
async def send_message_upload(
    run_ref: str,
    text: Annotated[str, Form(min_length=1, max_length=200_000)],
    svc: Svc,
    images: Annotated[
        list[UploadFile] | None,
        File(description="PNG, JPEG, GIF or WebP files, 5 MB each, at most 5 (typed by bytes)."),
    ] = None,
) -> dict[str, Any]:
    """The same message as ``POST …/messages``, with images as multipart files (a pasted or
    dropped file, a script's ``curl -F``) instead of data URLs."""
    files = images or []
    image_files.check_count(len(files))
    urls = [
        image_files.from_upload(i, await f.read(image_files.MAX_IMAGE_BYTES + 1))
        for i, f in enumerate(files)
    ]
    return await run_service.message(svc, run_ref, text, images=urls)


@router.post(
    "/{run_ref}/follow-up",
    dependencies=[require_scope("runs:write")],
    status_code=201,
    response_model=RunView,
)
async def follow_up(
    run_ref: str, body: FollowUpBody, svc: Svc, principal: Caller
) -> dict[str, Any]:
    """A new run whose source is this run's branch."""
    return await run_service.follow_up(svc, run_ref, body.data(), principal)


@router.post(
    "/{run_ref}/retry",
    dependencies=[require_scope("runs:write")],
    status_code=201,
    response_model=RunView,
)
async def retry(run_ref: str, svc: Svc, principal: Caller) -> dict[str, Any]:
    """A new run with the same prompt and agent from the original source."""
    return await run_service.retry(svc, run_ref, principal)


@router.post(
    "/{run_ref}/archive", dependencies=[require_scope("runs:write")], response_model=RunView
)
async def archive(run_ref: str, svc: Svc) -> dict[str, Any]:
    return await run_service.set_archived(svc, run_ref, True)


@router.post(
    "/{run_ref}/unarchive", dependencies=[require_scope("runs:write")], response_model=RunView
)
async def unarchive(run_ref: str, svc: Svc) -> dict[str, Any]:
    return await run_service.set_archived(svc, run_ref, False)
