"""Rows of issue 21: each repository's local checks, and the fix loops' feedback ledger.

The ledger (``feedback_marks``) is what makes a fix loop fire once per failure and stop after a
few attempts: a failure's key is inserted when it is handed back (a second insert of the same
key does nothing), and the attempts of a run or pull request are the counted rows of its scope.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from codeyard.domain.events import utc_now
from codeyard.store import schema, wakeups
from codeyard.store.upsert import insert_ignore
from codeyard.store.writer import Tx

__all__ = ["any_after_turn", "attempts", "get_config", "mark", "reset", "save_config"]

R = schema.repo_checks
M = schema.feedback_marks

#: What a repository without a row has: no checks, nothing gated.
EMPTY: dict[str, Any] = {"checks": [], "required": False, "after_turn": False, "fix_loop": False}


async def get_config(conn: AsyncConnection, repo_id: str) -> dict[str, Any]:
    row = (await conn.execute(select(R).where(R.c.repo_id == repo_id))).mappings().first()
    if row is None:
        return {"repo_id": repo_id, **EMPTY, "updated_at": None}
    return dict(row)


async def save_config(tx: Tx, repo_id: str, config: dict[str, Any]) -> None:
    """Replace the repository's checks configuration (the one door for its writes: each is
    announced, so :func:`any_after_turn` is asked again)."""
    await tx.conn.execute(R.delete().where(R.c.repo_id == repo_id))
    await tx.conn.execute(R.insert().values(repo_id=repo_id, updated_at=utc_now(), **config))
    await wakeups.written(tx, wakeups.REPO_CHECKS)


async def _read_after_turn(conn: AsyncConnection) -> bool:
    query = select(R.c.repo_id).where(R.c.after_turn.is_(True)).limit(1)
    return (await conn.execute(query)).first() is not None


_AFTER_TURN = wakeups.Known(wakeups.REPO_CHECKS, _read_after_turn)


async def any_after_turn(engine: AsyncEngine) -> bool:
    """Whether any repository runs its checks after each turn: most installs have none, and
    then a turn's end reads nothing for them (issue 15). From memory while every write is
    heard (``wakeups.Known``)."""
    return await _AFTER_TURN.get(engine)


async def mark(tx: Tx, key: str, scope: str, run_id: str, source: str) -> bool:
    """Remember that the failure ``key`` was handed back; False when it already was."""
    row = {
        "key": key[:300],
        "scope": scope[:300],
        "run_id": run_id,
        "source": source,
        "counted": True,
        "created_at": utc_now(),
    }
    return await insert_ignore(tx.conn, M, [row], ["key"]) == 1


async def attempts(conn: AsyncConnection, scope: str) -> int:
    """Failures handed back in ``scope`` since the last reset."""
    query = select(func.count()).where(M.c.scope == scope[:300], M.c.counted.is_(True))
    return int((await conn.execute(query)).scalar() or 0)


async def reset(tx: Tx, scope: str) -> None:
    """A person stepped in (a human comment): the cap counts from zero again."""
    await tx.conn.execute(M.update().where(M.c.scope == scope[:300]).values(counted=False))
