"""Browsing: a run's worktree on disk, and any commit of a registered repository.

Every path is resolved inside the worktree (or the commit's tree) or refused with 400.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query

from codeyard.api.auth import require_scope
from codeyard.api.deps import Svc
from codeyard.api.meta_views import (
    RepoBlobView,
    RepoTreeView,
    WorkspaceFileView,
    WorkspaceListingView,
)
from codeyard.services import projects as project_service
from codeyard.services import review
from codeyard.workspace import browse

router = APIRouter(tags=["workspace"])

PathQ = Annotated[str, Query(max_length=4096, description="Relative to the root; '' for it.")]
RepoQ = Annotated[str | None, Query(description="Which repository (default: the run's first).")]
TruncateQ = Annotated[
    bool, Query(description=f"Send the first {browse.MAX_FILE_BYTES} bytes of a bigger file.")
]
RefQ = Annotated[str | None, Query(max_length=250, description="Default: the default branch.")]


@router.get(
    "/runs/{run_ref}/workspace",
    dependencies=[require_scope("runs:read")],
    response_model=WorkspaceListingView,
)
async def list_workspace(
    run_ref: str,
    svc: Svc,
    path: PathQ = "",
    depth: Annotated[int, Query(ge=1, le=browse.MAX_DEPTH)] = 1,
    repo_id: RepoQ = None,
) -> dict[str, Any]:
    """Files and directories of the run's worktree, ``depth`` levels below ``path``."""
    return await review.browse(svc, run_ref, repo_id, path, depth=depth)


@router.get(
    "/runs/{run_ref}/workspace/file",
    dependencies=[require_scope("runs:read")],
    response_model=WorkspaceFileView,
)
async def read_workspace_file(
    run_ref: str, svc: Svc, path: PathQ, repo_id: RepoQ = None, truncate: TruncateQ = False
) -> dict[str, Any]:
    """One file of the run's worktree; text as UTF-8, binary as base64; 413 beyond 1 MiB."""
    return await review.browse(svc, run_ref, repo_id, path, truncate=truncate)


async def _repo(svc: Svc, repo_id: str, ref: str | None) -> tuple[dict[str, Any], Path, str]:
    repo = await project_service.get_repo(svc, repo_id)
    return repo, Path(repo["path"]), ref or repo["default_branch"] or "HEAD"


@router.get(
    "/repos/{repo_id}/tree", dependencies=[require_scope("runs:read")], response_model=RepoTreeView
)
async def repo_tree(repo_id: str, svc: Svc, path: PathQ = "", ref: RefQ = None) -> dict[str, Any]:
    """One directory of a commit (400 naming ``ref`` when it names no commit)."""
    repo, where, rev = await _repo(svc, repo_id, ref)
    return {"repo_id": repo["id"], **await browse.repo_tree(where, repo["name"], rev, path)}


@router.get(
    "/repos/{repo_id}/blob", dependencies=[require_scope("runs:read")], response_model=RepoBlobView
)
async def repo_blob(
    repo_id: str, svc: Svc, path: PathQ, ref: RefQ = None, truncate: TruncateQ = False
) -> dict[str, Any]:
    """One file of a commit, shaped like ``workspace/file``."""
    repo, where, rev = await _repo(svc, repo_id, ref)
    blob = await browse.repo_blob(where, repo["name"], rev, path, truncate=truncate)
    return {"repo_id": repo["id"], **blob}
