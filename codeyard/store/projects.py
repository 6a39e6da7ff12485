"""Projects, their repositories, and agent profiles: plain rows."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Row, bindparam, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from codeyard.crypto import SecretBox
from codeyard.domain.errors import NotFound
from codeyard.domain.events import utc_now
from codeyard.store import schema, wakeups
from codeyard.store.pages import decode_cursor, page
from codeyard.store.statement import Reader, Statement
from codeyard.store.writer import Tx

P, RP, A = schema.projects, schema.repos, schema.agents
#: Read for every run's creation and preparation (``store.statement``).
_PROJECT: Statement[tuple[Any, ...]] = Statement(
    select(P).where((P.c.id == bindparam("ref")) | (P.c.slug == bindparam("ref")))
)
_REPOS_OF: Statement[tuple[Any, ...]] = Statement(
    select(RP).where(RP.c.project_id == bindparam("project_id")).order_by(RP.c.created_at, RP.c.id)
)
_REPO: Statement[tuple[Any, ...]] = Statement(select(RP).where(RP.c.id == bindparam("repo_id")))
_REPO_AT: Statement[tuple[Any, ...]] = Statement(
    select(RP).where(RP.c.path == bindparam("path")).limit(1)
)
_AGENT: Statement[tuple[Any, ...]] = Statement(select(A).where(A.c.id == bindparam("agent_id")))


def _d(row: Row[Any]) -> dict[str, Any]:
    return dict(row._mapping)


async def get_project(conn: Reader, ref: str) -> dict[str, Any]:
    row = await _PROJECT.first_mapping(conn, ref=ref)
    if row is None:
        raise NotFound(f"No project '{ref}'. List projects with GET /api/projects.")
    return row


async def find_project_by_slug(conn: AsyncConnection, slug: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(P).where(P.c.slug == slug))).first()
    return _d(row) if row else None


async def list_projects(
    conn: AsyncConnection, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    stmt = select(P).order_by(P.c.created_at.desc(), P.c.id.desc()).limit(limit + 1)
    after = decode_cursor(cursor)
    if after is not None:
        stmt = stmt.where(
            (P.c.created_at < after[0]) | ((P.c.created_at == after[0]) & (P.c.id < after[1]))
        )
    rows = [_d(r) for r in (await conn.execute(stmt)).all()]
    return page(rows, limit, key=lambda r: [r["created_at"], r["id"]])


async def repos_of(conn: Reader, project_id: str) -> list[dict[str, Any]]:
    return await _REPOS_OF.mappings(conn, project_id=project_id)


async def get_repo(conn: AsyncConnection, repo_id: str) -> dict[str, Any]:
    row = await _REPO.first_mapping(conn, repo_id=repo_id)
    if row is None:
        raise NotFound(f"No repository '{repo_id}'.")
    return row


async def find_repo_by_path(conn: Reader, path: str) -> dict[str, Any] | None:
    return await _REPO_AT.first_mapping(conn, path=path)


async def insert_project(tx: Tx, values: dict[str, Any]) -> None:
    await tx.conn.execute(P.insert().values(**values))
    await wakeups.written(tx, wakeups.POLICIES)


async def insert_repo(tx: Tx, values: dict[str, Any]) -> None:
    await tx.conn.execute(RP.insert().values(**values))


async def update_project(tx: Tx, project_id: str, values: dict[str, Any]) -> None:
    await tx.conn.execute(
        update(P).where(P.c.id == project_id).values(updated_at=utc_now(), **values)
    )
    await wakeups.written(tx, wakeups.POLICIES)


async def update_repo(tx: Tx, repo_id: str, values: dict[str, Any]) -> None:
    await tx.conn.execute(
        update(RP).where(RP.c.id == repo_id).values(updated_at=utc_now(), **values)
    )


async def delete_repo(tx: Tx, repo_id: str) -> None:
    await tx.conn.execute(delete(RP).where(RP.c.id == repo_id))


async def delete_project(tx: Tx, project_id: str) -> None:
    await tx.conn.execute(delete(RP).where(RP.c.project_id == project_id))
    await tx.conn.execute(delete(P).where(P.c.id == project_id))
    await wakeups.written(tx, wakeups.POLICIES)


async def get_agent(conn: AsyncConnection, agent_id: str) -> dict[str, Any]:
    row = await _AGENT.first_mapping(conn, agent_id=agent_id)
    if row is None:
        raise NotFound(f"No agent profile '{agent_id}'. List them with GET /api/agents.")
    return row


async def list_agents(
    conn: AsyncConnection, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    stmt = select(A).order_by(A.c.created_at.desc(), A.c.id.desc()).limit(limit + 1)
    after = decode_cursor(cursor)
    if after is not None:
        stmt = stmt.where(
            (A.c.created_at < after[0]) | ((A.c.created_at == after[0]) & (A.c.id < after[1]))
        )
    rows = [_d(r) for r in (await conn.execute(stmt)).all()]
    return page(rows, limit, key=lambda r: [r["created_at"], r["id"]])


async def insert_agent(tx: Tx, values: dict[str, Any]) -> None:
    await tx.conn.execute(A.insert().values(**values))
    await wakeups.written(tx, wakeups.POLICIES)


async def update_agent(tx: Tx, agent_id: str, values: dict[str, Any]) -> None:
    await tx.conn.execute(
        update(A).where(A.c.id == agent_id).values(updated_at=utc_now(), **values)
    )
    await wakeups.written(tx, wakeups.POLICIES)


async def delete_agent(tx: Tx, agent_id: str) -> None:
    await tx.conn.execute(delete(A).where(A.c.id == agent_id))
    await wakeups.written(tx, wakeups.POLICIES)


#: The run option naming the agent profile whose sealed ``env`` the executor adds at each turn.
AGENT_ENV = "agent_env_id"


def seal_profile_env(box: SecretBox, agent_id: str, env: dict[str, str]) -> str:
    """The ``env_sealed`` value for a profile's ``provider_config.env`` (bound to the profile)."""
    return box.encrypt(json.dumps(env, sort_keys=True).encode(), f"agent-env:{agent_id}")


def profile_env(box: SecretBox, row: dict[str, Any]) -> dict[str, str]:
    """A profile's decrypted ``provider_config.env`` ({} when it has none sealed)."""
    if not row.get("env_sealed"):
        return {}
    data: dict[str, str] = json.loads(box.decrypt(row["env_sealed"], f"agent-env:{row['id']}"))
    return data


async def profile_env_of(conn: AsyncConnection, box: SecretBox, agent_id: str) -> dict[str, str]:
    """The decrypted env of profile ``agent_id`` ({} when the profile is gone)."""
    row = (await conn.execute(select(A).where(A.c.id == agent_id))).first()
    return profile_env(box, _d(row)) if row is not None else {}
