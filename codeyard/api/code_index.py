"""A project's code index and map (the Laravel seed's ``index-rag`` and ``map``), and search."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from codeyard.api.auth import require_scope
from codeyard.api.deps import Svc
from codeyard.services import code_index

router = APIRouter(tags=["projects"])


class RepoIndexStats(BaseModel):
    repo_id: str
    name: str
    commit: str
    files: int
    indexed: int = Field(description="Text files in the index (binary and huge ones are not).")
    added: int
    changed: int
    removed: int
    seconds: float


class IndexResult(BaseModel):
    project_id: str
    repos: list[RepoIndexStats]


class SearchHit(BaseModel):
    repo_id: str
    path: str
    score: float = Field(description="BM25 relevance (higher is better).")
    line: int
    snippet: str


class SearchResult(BaseModel):
    project_id: str
    query: str
    data: list[SearchHit]


class RepoMap(BaseModel):
    repo_id: str
    name: str
    commit: str | None
    files: int
    lines: int
    languages: dict[str, int] = Field(description="Lines per language.")
    modules: list[dict[str, Any]]
    entry_points: list[dict[str, str]]
    dependencies: list[dict[str, str]]
    imports: list[dict[str, str]]
    mermaid: str = Field(description="The modules and their imports as a Mermaid flowchart.")


class ProjectMap(BaseModel):
    project_id: str
    repos: list[RepoMap]


@router.post(
    "/projects/{project_ref}/index-rag",
    dependencies=[require_scope("settings:write")],
    response_model=IndexResult,
)
async def index_project(project_ref: str, svc: Svc) -> IndexResult:
    """Build or update the code index of each repository at its default branch (incremental:
    only files whose content changed are read)."""
    return IndexResult(**await code_index.build(svc, project_ref))


@router.get(
    "/projects/{project_ref}/search",
    dependencies=[require_scope("runs:read")],
    response_model=SearchResult,
)
async def search_code(
    project_ref: str,
    svc: Svc,
    q: Annotated[str, Query(min_length=1, max_length=500)],
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> SearchResult:
    """Files most relevant to ``q`` (identifiers match whole and by their parts)."""
    return SearchResult(**await code_index.search(svc, project_ref, q, limit))


@router.get(
    "/projects/{project_ref}/map",
    dependencies=[require_scope("runs:read")],
    response_model=ProjectMap,
)
async def project_map(project_ref: str, svc: Svc) -> ProjectMap:
    """Modules with sizes, entry points, languages, dependencies and a Mermaid import graph,
    computed from the code (indexing first when needed)."""
    return ProjectMap(**await code_index.project_map(svc, project_ref))


class Column(BaseModel):
    name: str
    type: str


class Table(BaseModel):
    name: str
    source: str = Field(description="The file the table was found in.")
    columns: list[Column]


class RepoSchema(BaseModel):
    repo_id: str
    name: str
    tables: list[Table]
    mermaid: str = Field(description="The tables as a Mermaid erDiagram.")


class ProjectSchema(BaseModel):
    project_id: str
    repos: list[RepoSchema]


@router.get(
    "/projects/{project_ref}/schema",
    dependencies=[require_scope("runs:read")],
    response_model=ProjectSchema,
)
async def project_schema(project_ref: str, svc: Svc) -> ProjectSchema:
    """Database tables the code declares: SQL files, SQLAlchemy/Alembic, Django models and
    Laravel migrations (pattern-based; names the file of each table)."""
    return ProjectSchema(**await code_index.schema(svc, project_ref))


@router.get(
    "/projects/{project_ref}/diagrams",
    dependencies=[require_scope("runs:read")],
    response_class=PlainTextResponse,
)
async def project_diagrams(project_ref: str, svc: Svc) -> PlainTextResponse:
    """Markdown with Mermaid diagrams (modules and imports, database schema) per repository."""
    return PlainTextResponse(
        await code_index.diagrams(svc, project_ref), media_type="text/markdown"
    )
