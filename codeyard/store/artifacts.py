"""Artifact rows: files a run produced or registered (the bytes stay in the worktree)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncConnection

from codeyard.domain.errors import NotFound
from codeyard.store import schema
from codeyard.store.writer import Tx

A = schema.artifacts


def _d(row: Row[Any]) -> dict[str, Any]:
    return dict(row._mapping)


async def of_run(conn: AsyncConnection, run_id: str) -> list[dict[str, Any]]:
    stmt = select(A).where(A.c.run_id == run_id).order_by(A.c.created_at, A.c.id)
    return [_d(r) for r in (await conn.execute(stmt)).all()]


async def get(conn: AsyncConnection, artifact_id: str) -> dict[str, Any]:
    row = (await conn.execute(select(A).where(A.c.id == artifact_id))).first()
    if row is None:
        raise NotFound(
            f"No artifact '{artifact_id}'. List a run's artifacts with "
            "GET /api/runs/{id}/artifacts."
        )
    return _d(row)


async def find_path(
    conn: AsyncConnection, run_id: str, repo_id: str | None, path: str
) -> str | None:
    stmt = select(A.c.id).where(A.c.run_id == run_id, A.c.path == path)
    stmt = stmt.where(A.c.repo_id.is_(None) if repo_id is None else A.c.repo_id == repo_id)
    return (await conn.execute(stmt)).scalar_one_or_none()


async def upsert(tx: Tx, values: dict[str, Any]) -> None:
    """Insert, or refresh the digest/size/type of the same path registered before."""
    existing = await find_path(tx.conn, values["run_id"], values["repo_id"], values["path"])
    if existing is None:
        await tx.conn.execute(A.insert().values(**values))
        return
    values["id"] = existing
    keep = {k: v for k, v in values.items() if k not in ("id", "run_id", "repo_id", "path")}
    await tx.conn.execute(A.update().where(A.c.id == existing).values(**keep))
