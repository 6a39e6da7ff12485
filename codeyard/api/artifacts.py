"""Artifacts: files a run produced (under ``.codeyard/artifacts/``) or registered, with content
types (CodePlane's ``/api/jobs/{id}/artifacts`` and ``/api/artifacts/{id}``)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from codeyard.api.auth import require_scope
from codeyard.api.deps import Svc
from codeyard.api.schemas import Body
from codeyard.domain.errors import Conflict
from codeyard.services import artifacts as artifact_service

router = APIRouter(tags=["artifacts"])


class ArtifactRegister(Body):
    path: str = Field(min_length=1, max_length=4096, description="Path inside the worktree.")
    repo_id: str | None = Field(default=None, description="For multi-repository runs.")


class Artifact(BaseModel):
    id: str
    run_id: str
    repo_id: str | None
    path: str
    name: str
    content_type: str
    size: int
    sha256: str
    source: str = Field(description="'agent' (collected) or 'operator' (registered).")
    created_at: str


class ArtifactDetail(Artifact):
    available: bool = Field(description="The file is still in the run's worktree.")
    changed: bool | None = Field(description="It differs from when it was registered.")
    content_url: str


class ArtifactList(BaseModel):
    data: list[Artifact]
    next_cursor: str | None = None


@router.get(
    "/runs/{run_ref}/artifacts",
    dependencies=[require_scope("runs:read")],
    response_model=ArtifactList,
)
async def list_artifacts(run_ref: str, svc: Svc) -> ArtifactList:
    """Registered artifacts, and new files under ``.codeyard/artifacts/`` in the worktree."""
    rows = await artifact_service.list_for_run(svc, run_ref)
    return ArtifactList(data=[Artifact(**r) for r in rows])


@router.post(
    "/runs/{run_ref}/artifacts",
    dependencies=[require_scope("runs:write")],
    status_code=201,
    response_model=Artifact,
)
async def register_artifact(run_ref: str, body: ArtifactRegister, svc: Svc) -> Artifact:
    """Register a file of the run's worktree as an artifact (again: refresh its digest)."""
    row = await artifact_service.register(svc, run_ref, body.path, body.repo_id, "operator")
    return Artifact(**row)


@router.get(
    "/artifacts/{artifact_id}",
    dependencies=[require_scope("runs:read")],
    response_model=ArtifactDetail,
)
async def get_artifact(artifact_id: str, svc: Svc) -> ArtifactDetail:
    row, real = await artifact_service.get(svc, artifact_id)
    state = await artifact_service.state(row, real)
    return ArtifactDetail(**state, content_url=f"/api/artifacts/{artifact_id}/content")


@router.get(
    "/artifacts/{artifact_id}/content",
    dependencies=[require_scope("runs:read")],
    response_class=FileResponse,
)
async def artifact_content(artifact_id: str, svc: Svc) -> FileResponse:
    """The file itself, with its content type (409 when the worktree is gone)."""
    row, real = await artifact_service.get(svc, artifact_id)
    if real is None:
        raise Conflict(
            f"The file of artifact {artifact_id} is gone (its run's worktree was discarded or "
            "cleaned up)."
        )
    return FileResponse(real, media_type=row["content_type"], filename=row["name"])
