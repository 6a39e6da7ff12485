"""Reading the event log (replay, paging, folding into transcripts)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from codeyard.domain.events import StoredEvent
from codeyard.store import schema
from codeyard.store.statement import Reader, Statement

E = schema.events
_Row = tuple[int, str, str, int, str, str, str]
#: A replay page of one run by ``seq`` (``events.stream``: every stream of a run starts with one).
_RUN_PAGE: Statement[_Row] = Statement(
    select(E.c.id, E.c.run_id, E.c.project_id, E.c.seq, E.c.type, E.c.ts, E.c.data)
    .where(
        E.c.run_id == bindparam("run_id"),
        E.c.seq > bindparam("after_seq"),
        E.c.id > bindparam("after"),
    )
    .order_by(E.c.seq)
    .limit(bindparam("limit"))
)
_SEQ_OF: Statement[tuple[int]] = Statement(
    select(E.c.seq).where(E.c.id == bindparam("event_id"), E.c.run_id == bindparam("run_id"))
)


async def run_page(
    conn: Reader, run_id: str, after: int, after_seq: int, limit: int
) -> list[StoredEvent]:
    """A run's events with ``seq > after_seq`` and ``id > after``, by ``seq``, at most
    ``limit`` (the ``(run_id, seq)`` index: see ``events.stream``)."""
    rows = await _RUN_PAGE.rows(conn, run_id=run_id, after_seq=after_seq, after=after, limit=limit)
    return [StoredEvent(*r) for r in rows]


async def seq_of(conn: AsyncConnection, run_id: str, event_id: int) -> int | None:
    """The ``seq`` of event ``event_id`` if it is one of this run's (None: it is not)."""
    row = await _SEQ_OF.first(conn, run_id=run_id, event_id=event_id)
    return None if row is None else row[0]


async def read(
    conn: AsyncConnection,
    *,
    run_id: str | None = None,
    project_id: str | None = None,
    types: frozenset[str] | None = None,
    after: int = 0,
    limit: int = 1000,
) -> list[StoredEvent]:
    """Events with ``id > after``, ascending, at most ``limit``."""
    stmt = (
        select(E.c.id, E.c.run_id, E.c.project_id, E.c.seq, E.c.type, E.c.ts, E.c.data)
        .where(E.c.id > after)
        .order_by(E.c.id)
        .limit(limit)
    )
    if run_id is not None:
        stmt = stmt.where(E.c.run_id == run_id)
    if project_id is not None:
        stmt = stmt.where(E.c.project_id == project_id)
    if types:
        stmt = stmt.where(E.c.type.in_(sorted(types)))
    rows = (await conn.execute(stmt)).all()
    return [StoredEvent(r[0], r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows]


async def read_all(
    conn: AsyncConnection, run_id: str, types: frozenset[str] | None = None
) -> list[StoredEvent]:
    """Every event of one run (for folding into transcripts, timelines…)."""
    out: list[StoredEvent] = []
    after = 0
    while True:
        chunk = await read(conn, run_id=run_id, types=types, after=after, limit=5000)
        out.extend(chunk)
        if len(chunk) < 5000:
            return out
        after = chunk[-1].id


async def read_tail(conn: AsyncConnection, run_id: str, count: int) -> list[StoredEvent]:
    """The last ``count`` events of a run, ascending."""
    stmt = (
        select(E.c.id, E.c.run_id, E.c.project_id, E.c.seq, E.c.type, E.c.ts, E.c.data)
        .where(E.c.run_id == run_id)
        .order_by(E.c.seq.desc())
        .limit(count)
    )
    rows = (await conn.execute(stmt)).all()
    return [StoredEvent(r[0], r[1], r[2], r[3], r[4], r[5], r[6]) for r in reversed(rows)]


async def last_of_type(conn: AsyncConnection, run_id: str, type_: str) -> dict[str, Any] | None:
    """The data of a run's most recent event of one type."""
    stmt = (
        select(E.c.data)
        .where(E.c.run_id == run_id, E.c.type == type_)
        .order_by(E.c.seq.desc())
        .limit(1)
    )
    raw = (await conn.execute(stmt)).scalar()
    return json.loads(raw) if raw is not None else None


async def result_call_ids(conn: AsyncConnection, run_id: str) -> set[str]:
    """The call ids of a run's ``tool.result`` events (which calls finished)."""
    stmt = select(E.c.data).where(E.c.run_id == run_id, E.c.type == "tool.result")
    out: set[str] = set()
    for (raw,) in (await conn.execute(stmt)).all():
        call_id = json.loads(raw).get("call_id")
        if isinstance(call_id, str):
            out.add(call_id)
    return out


async def read_ids(conn: AsyncConnection, ids: list[int]) -> list[StoredEvent]:
    """The events with these ids, ascending (what another process's NOTIFY announced)."""
    stmt = (
        select(E.c.id, E.c.run_id, E.c.project_id, E.c.seq, E.c.type, E.c.ts, E.c.data)
        .where(E.c.id.in_(ids))
        .order_by(E.c.id)
    )
    rows = (await conn.execute(stmt)).all()
    return [StoredEvent(r[0], r[1], r[2], r[3], r[4], r[5], r[6]) for r in rows]


async def last_id(conn: AsyncConnection) -> int:
    """The highest event id committed (0 for an empty log)."""
    return int((await conn.execute(select(func.max(E.c.id)))).scalar() or 0)
