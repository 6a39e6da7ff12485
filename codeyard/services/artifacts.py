"""Artifacts: files a run's agent produced or someone registered, with their content types.

Two ways in: registering a path (``POST /api/runs/{id}/artifacts``, e.g. a report the agent
wrote), and the convention that whatever an agent writes under ``.codeyard/artifacts/`` in its
worktree is an artifact (collected when the list is read). The bytes stay in the worktree; the
row keeps the size and SHA-256 taken at registration, so a later change shows as ``changed``.
"""

from __future__ import annotations

import hashlib
import mimetypes
from pathlib import Path
from typing import Any

import anyio

from codeyard.domain.errors import BadRequest, Conflict, NotFound
from codeyard.domain.events import utc_now
from codeyard.domain.ids import new_id
from codeyard.services.context import Services
from codeyard.store import artifacts, runs
from codeyard.store.writer import Tx
from codeyard.workspace.browse import resolve_inside

#: Files under this directory of a worktree are collected as artifacts without registering.
CONVENTION_DIR = ".codeyard/artifacts"
_MAX_COLLECTED = 200


def content_type(path: str) -> str:
    guessed, _ = mimetypes.guess_type(path)
    return guessed or "application/octet-stream"


def _digest(path: Path) -> tuple[int, str]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
    return size, h.hexdigest()


def _worktree(run: dict[str, Any], repo_id: str | None) -> tuple[str, Path]:
    trees: dict[str, str] = run["worktrees"] or {}
    if not trees:
        raise Conflict(
            f"Run {run['number']} has no worktree (not started yet, discarded or cleaned up): "
            "its files are gone.",
            current_status=run["status"],
        )
    if repo_id is None:
        rid = next(iter(trees))
    elif repo_id in trees:
        rid = repo_id
    else:
        raise NotFound(f"Repository '{repo_id}' is not part of run {run['number']}.")
    return rid, Path(trees[rid])


async def _row(
    run: dict[str, Any], repo_id: str | None, user_path: str, source: str
) -> dict[str, Any]:
    rid, root = _worktree(run, repo_id)
    real, rel = resolve_inside(root, user_path)
    if not await anyio.to_thread.run_sync(real.is_file):
        raise BadRequest(f"'{user_path}' is not a file in the run's worktree.", path=user_path)
    size, sha = await anyio.to_thread.run_sync(_digest, real)
    return {
        "id": new_id("art"),
        "run_id": run["id"],
        "repo_id": rid if len(run["worktrees"]) > 1 else None,
        "path": rel,
        "name": Path(rel).name,
        "content_type": content_type(rel),
        "size": size,
        "sha256": sha,
        "source": source,
        "created_at": utc_now(),
    }


async def register(
    svc: Services, run_ref: str, path: str, repo_id: str | None, source: str
) -> dict[str, Any]:
    async with svc.engine.connect() as conn:
        run = await runs.get(conn, run_ref)
    row = await _row(run, repo_id, path, source)

    async def job(tx: Tx) -> None:
        await artifacts.upsert(tx, row)

    await svc.writer.run(job)
    return public(row)


def _conventional(root: Path) -> list[str]:
    base = root / CONVENTION_DIR
    if not base.is_dir():
        return []
    found = [p for p in sorted(base.rglob("*")) if p.is_file() and not p.is_symlink()]
    return [p.relative_to(root).as_posix() for p in found[:_MAX_COLLECTED]]


async def list_for_run(svc: Services, run_ref: str) -> list[dict[str, Any]]:
    """Registered artifacts, after collecting new files under ``.codeyard/artifacts/``."""
    async with svc.engine.connect() as conn:
        run = await runs.get(conn, run_ref)
        known = {(r["repo_id"], r["path"]) for r in await artifacts.of_run(conn, run["id"])}
    for rid, tree in (run["worktrees"] or {}).items():
        shown_rid = rid if len(run["worktrees"]) > 1 else None
        for rel in await anyio.to_thread.run_sync(_conventional, Path(tree)):
            if (shown_rid, rel) not in known:
                await register(svc, run["id"], rel, rid, "agent")
    async with svc.engine.connect() as conn:
        rows = await artifacts.of_run(conn, run["id"])
    return [public(r) for r in rows]


async def get(svc: Services, artifact_id: str) -> tuple[dict[str, Any], Path | None]:
    """The artifact and its file now (None when the worktree or file is gone)."""
    async with svc.engine.connect() as conn:
        row = await artifacts.get(conn, artifact_id)
        run = await runs.get(conn, row["run_id"])
    trees: dict[str, str] = run["worktrees"] or {}
    tree = trees.get(row["repo_id"]) if row["repo_id"] else next(iter(trees.values()), None)
    if tree is None:
        return public(row), None
    real, _ = resolve_inside(Path(tree), row["path"])
    return public(row), real if real.is_file() else None


async def state(row: dict[str, Any], real: Path | None) -> dict[str, Any]:
    """``available`` and ``changed`` (the file differs from what was registered)."""
    if real is None:
        return {**row, "available": False, "changed": None}
    size, sha = await anyio.to_thread.run_sync(_digest, real)
    return {**row, "available": True, "changed": sha != row["sha256"] or size != row["size"]}


def public(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "run_id", "repo_id", "path", "name", "content_type", "size", "sha256")
    return {**{k: row[k] for k in keys}, "source": row["source"], "created_at": row["created_at"]}
