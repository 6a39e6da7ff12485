"""A project's managed documents and changelog (the Laravel seed's ``/docs``, ``/changelog``)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from codeyard.api.auth import Caller, require_scope
from codeyard.api.deps import Limit, Svc
from codeyard.api.schemas import Body
from codeyard.services import managed_docs

router = APIRouter(tags=["projects"])


class DocMeta(BaseModel):
    slug: str
    title: str
    generated_at: str | None = Field(description="When its auto-block was last regenerated.")
    updated_at: str
    updated_by: str | None = Field(description="The user of the last edit by hand.")


class DocList(BaseModel):
    project_id: str
    data: list[DocMeta]


class Doc(DocMeta):
    project_id: str
    body: str = Field(description="Markdown; the generated part is between codeyard:auto markers.")


class DocBody(Body):
    body: str = Field(max_length=1_000_000)


class ChangelogEntry(BaseModel):
    id: str
    run_id: str
    title: str
    summary: str
    files: list[str]
    created_at: str


class Changelog(BaseModel):
    project_id: str
    data: list[ChangelogEntry]


@router.get(
    "/projects/{project_ref}/docs",
    dependencies=[require_scope("runs:read")],
    response_model=DocList,
)
async def list_docs(project_ref: str, svc: Svc) -> DocList:
    return DocList(**await managed_docs.list_docs(svc, project_ref))


@router.post(
    "/projects/{project_ref}/docs/regenerate",
    dependencies=[require_scope("settings:write")],
    response_model=DocList,
)
async def regenerate_docs(project_ref: str, svc: Svc) -> DocList:
    """Regenerate the project map, database schema and architecture diagrams from the code;
    only their auto-blocks change, text written around them stays."""
    return DocList(**await managed_docs.regenerate(svc, project_ref))


@router.get(
    "/projects/{project_ref}/docs/{slug}",
    dependencies=[require_scope("runs:read")],
    response_model=Doc,
)
async def get_doc(project_ref: str, slug: str, svc: Svc) -> Doc:
    return Doc(**await managed_docs.get_doc(svc, project_ref, slug))


@router.put(
    "/projects/{project_ref}/docs/{slug}",
    dependencies=[require_scope("settings:write")],
    response_model=Doc,
)
async def put_doc(project_ref: str, slug: str, body: DocBody, svc: Svc, principal: Caller) -> Doc:
    """Write a document by hand (keep the auto markers of a managed one to keep it managed)."""
    return Doc(**await managed_docs.put_doc(svc, project_ref, slug, body.body, principal.user_id))


@router.get(
    "/projects/{project_ref}/changelog",
    dependencies=[require_scope("runs:read")],
    response_model=Changelog,
)
async def changelog(project_ref: str, svc: Svc, limit: Limit = 50) -> Changelog:
    """One entry per landed run, newest first: title, the agent's summary, files changed."""
    return Changelog(**await managed_docs.changelog(svc, project_ref, limit))
