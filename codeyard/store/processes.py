"""Process groups runs started, recorded until they are gone (issue 12: crash-proof runs)."""

from __future__ import annotations

from sqlalchemy import bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from codeyard.domain.events import utc_now
from codeyard.store import schema
from codeyard.store.statement import Reader, Statement
from codeyard.store.writer import Tx

P = schema.run_processes
#: Written at every spawn and exit of a run's process group (``store.statement``).
_ADD: Statement[tuple[()]] = Statement(
    P.insert().values(
        {
            c: bindparam(c)
            for c in ("run_id", "pgid", "start_ticks", "boot_id", "kind", "created_at")
        }
    )
)
_REMOVE: Statement[tuple[()]] = Statement(
    delete(P).where(
        P.c.run_id == bindparam("run_id"),
        P.c.pgid == bindparam("pgid"),
        P.c.start_ticks == bindparam("start_ticks"),
    )
)
_OF_RUN: Statement[tuple[object, ...]] = Statement(
    select(P).where(P.c.run_id == bindparam("run_id")).order_by(P.c.id)
)


async def add(tx: Tx, run_id: str, pgid: int, start_ticks: int, boot_id: str, kind: str) -> None:
    await _ADD.run(
        tx.conn,
        run_id=run_id,
        pgid=pgid,
        start_ticks=start_ticks,
        boot_id=boot_id,
        kind=kind,
        created_at=utc_now(),
    )


async def remove(tx: Tx, run_id: str, pgid: int, start_ticks: int) -> None:
    await _REMOVE.run(tx.conn, run_id=run_id, pgid=pgid, start_ticks=start_ticks)


async def every(conn: AsyncConnection) -> list[dict[str, object]]:
    """Every recorded group (after a crash: what the dead server may have left running)."""
    return [dict(r._mapping) for r in (await conn.execute(select(P).order_by(P.c.id))).all()]


async def of_run(conn: Reader, run_id: str) -> list[dict[str, object]]:
    return await _OF_RUN.mappings(conn, run_id=run_id)


async def forget(tx: Tx, ids: list[int]) -> None:
    if ids:
        await tx.conn.execute(delete(P).where(P.c.id.in_(ids)))


async def forget_run(tx: Tx, run_id: str) -> None:
    await tx.conn.execute(delete(P).where(P.c.run_id == run_id))
