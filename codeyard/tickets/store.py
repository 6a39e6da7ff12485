"""Ticket, comment, review and queue rows (plain dicts), and ranked full-text search."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Row, bindparam, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from codeyard.domain.errors import NotFound
from codeyard.domain.events import utc_now
from codeyard.store import schema
from codeyard.store.pages import decode_cursor, page
from codeyard.store.statement import Reader, Statement
from codeyard.store.writer import Tx
from codeyard.tickets.domain import fts5_match

TK, CM, RV, WQ = schema.tickets, schema.ticket_comments, schema.reviews, schema.work_queues


def _d(row: Row[Any]) -> dict[str, Any]:
    return dict(row._mapping)


# --- tickets ----------------------------------------------------------------------------------


async def get_ticket(conn: AsyncConnection, project: dict[str, Any], number: int) -> dict[str, Any]:
    stmt = select(TK).where((TK.c.project_id == project["id"]) & (TK.c.number == number))
    row = (await conn.execute(stmt)).first()
    if row is None:
        raise NotFound(
            f"No ticket #{number} in project '{project['slug']}'. List them with "
            f"GET /api/projects/{project['slug']}/tickets."
        )
    return _d(row)


@functools.cache
def _run_and_work() -> Statement[tuple[Any, ...]]:
    """The run's row, whether a ticket names it as its current run, and whether a work queue
    of its project is running (built once, sent without Core's work: ``store.statement``)."""
    run = schema.runs
    works = select(TK.c.id).where(TK.c.current_run_id == run.c.id).exists()
    queued = select(WQ.c.id).where(WQ.c.status == "running", WQ.c.project_id == run.c.project_id)
    return Statement(
        select(run, works.label("_works_ticket"), queued.exists().label("_queue_running")).where(
            run.c.id == bindparam("run_id")
        )
    )


async def run_and_work(conn: Reader, run_id: str) -> tuple[dict[str, Any] | None, bool, bool]:
    """A run's row (None: no such run), whether it works a ticket, and whether a work queue of
    its project runs, in one statement: what the ticket follower needs at each turn end of
    every run, though most work no ticket and belong to no queue (issue 15: three reads)."""
    run = await _run_and_work().first_mapping(conn, run_id=run_id)
    if run is None:
        return None, False, False
    return run, bool(run.pop("_works_ticket")), bool(run.pop("_queue_running"))


async def tickets_by_ids(conn: AsyncConnection, ids: list[str]) -> list[dict[str, Any]]:
    if not ids:
        return []
    rows = (await conn.execute(select(TK).where(TK.c.id.in_(ids)))).all()
    return [_d(r) for r in rows]


async def ticket_of_run(conn: AsyncConnection, run_id: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(TK).where(TK.c.current_run_id == run_id))).first()
    return _d(row) if row else None


async def list_tickets(
    conn: AsyncConnection,
    project_id: str,
    statuses: list[str] | None,
    limit: int,
    cursor: str | None,
) -> tuple[list[dict[str, Any]], str | None]:
    """Newest number first; ``cursor`` is the last number seen."""
    stmt = select(TK).where(TK.c.project_id == project_id)
    if statuses:
        stmt = stmt.where(TK.c.status.in_(statuses))
    after = decode_cursor(cursor)
    if after is not None:
        stmt = stmt.where(TK.c.number < int(after))
    stmt = stmt.order_by(TK.c.number.desc()).limit(limit + 1)
    rows = [_d(r) for r in (await conn.execute(stmt)).all()]
    return page(rows, limit, key=lambda r: r["number"])


async def next_number(tx: Tx, project_id: str) -> int:
    stmt = select(func.max(TK.c.number)).where(TK.c.project_id == project_id)
    return int((await tx.conn.execute(stmt)).scalar() or 0) + 1


async def insert_ticket(tx: Tx, values: dict[str, Any]) -> None:
    await tx.conn.execute(TK.insert().values(**values))


async def update_ticket(tx: Tx, ticket_id: str, values: dict[str, Any]) -> dict[str, Any]:
    await tx.conn.execute(
        update(TK).where(TK.c.id == ticket_id).values(updated_at=utc_now(), **values)
    )
    row = (await tx.conn.execute(select(TK).where(TK.c.id == ticket_id))).first()
    assert row is not None
    return _d(row)


#: At most this many of a project's matches are scored per search (the newest ones).
RANKED_CAP = 2_000

#: The rowid of the project's ``RANKED_CAP``-th newest match (none when it has fewer): FTS5
#: yields matches in rowid order without scoring them, so this stops after ``RANKED_CAP`` rows.
_SQLITE_WINDOW = text(
    "SELECT f.rowid FROM tickets_fts f JOIN tickets t ON t.rowid = f.rowid "
    "WHERE tickets_fts MATCH :q AND t.project_id = :p ORDER BY f.rowid DESC LIMIT 1 OFFSET :cap"
)
#: bm25 over the matches at or above the window's floor (FTS5 applies the rowid bound itself).
_SQLITE_RANKED = text(
    "SELECT t.id AS id, bm25(tickets_fts, 10.0, 1.0) AS rank FROM tickets_fts "
    "JOIN tickets t ON t.rowid = tickets_fts.rowid "
    "WHERE tickets_fts MATCH :q AND tickets_fts.rowid >= :floor AND t.project_id = :p "
    "ORDER BY rank LIMIT :n"
)
#: ts_rank over the project's newest ``RANKED_CAP`` matches. With planner statistics, a common
#: word walks the (project_id, number) index backwards and stops after ``RANKED_CAP`` matches; a
#: rare one uses the GIN index. Both take ~1 ms at 100,000 tickets instead of 50-90 ms.
_PG_RANKED = text(
    "SELECT w.id, ts_rank(w.search, q) AS rank FROM ("
    "SELECT id, number, search FROM tickets "
    "WHERE project_id = :p AND search @@ to_tsquery('english', :q) "
    "ORDER BY number DESC LIMIT :cap) AS w, to_tsquery('english', :q) AS q "
    "ORDER BY rank DESC, w.number DESC LIMIT :n"
)


async def search(
    conn: AsyncConnection, project_id: str, terms: list[str], limit: int
) -> list[tuple[dict[str, Any], float]]:
    """Tickets matching every term (prefixes), best first, with a score where higher is better.

    SQLite ranks with FTS5's bm25 (title weighted 10 times); PostgreSQL with ``ts_rank`` over the
    stored weighted ``search`` column (title A, body B); both use their full-text index.

    Ranking costs per match (bm25 / ts_rank read every matching document), so a word found in a
    third of 100,000 tickets took 70-150 ms. When a project has more than ``RANKED_CAP``
    matches, only its newest ``RANKED_CAP`` are ranked: the cut-off rowid comes from walking the
    index newest first (cheap, no scoring), then the ranked query is bounded by it. Such words
    say little about relevance anyway (their IDF is near zero), and recent tickets are the likely
    target of a search box; a title match still outranks a body match within the window.
    """
    if not terms:
        return []
    if conn.dialect.name == "sqlite":
        args = {"q": fts5_match(terms), "p": project_id, "n": limit, "cap": RANKED_CAP - 1}
        floor = (await conn.execute(_SQLITE_WINDOW, args)).scalar()
        found = [
            (r.id, -float(r.rank))
            for r in await conn.execute(_SQLITE_RANKED, {**args, "floor": floor or 0})
        ]
    else:
        query = " & ".join(f"{t}:*" for t in terms)
        args = {"q": query, "p": project_id, "n": limit, "cap": RANKED_CAP}
        # asyncpg prepares statements; after five runs PostgreSQL may switch to a generic plan
        # that cannot tell a common word (walk the newest tickets) from a rare one (GIN index).
        await conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_custom_plan")
        found = [(r.id, float(r.rank)) for r in await conn.execute(_PG_RANKED, args)]
    by_id = {t["id"]: t for t in await tickets_by_ids(conn, [i for i, _ in found])}
    return [(by_id[i], score) for i, score in found if i in by_id]


# --- comments ---------------------------------------------------------------------------------


async def comments_of(conn: AsyncConnection, ticket_id: str) -> list[dict[str, Any]]:
    stmt = select(CM).where(CM.c.ticket_id == ticket_id).order_by(CM.c.created_at, CM.c.id)
    return [_d(r) for r in (await conn.execute(stmt)).all()]


async def insert_comment(tx: Tx, values: dict[str, Any]) -> None:
    await tx.conn.execute(CM.insert().values(**values))


# --- reviews ----------------------------------------------------------------------------------


async def reviews_of(
    conn: AsyncConnection, *, run_id: str | None = None, ticket_id: str | None = None
) -> list[dict[str, Any]]:
    stmt = select(RV).order_by(RV.c.created_at, RV.c.id)
    if run_id is not None:
        stmt = stmt.where(RV.c.run_id == run_id)
    if ticket_id is not None:
        stmt = stmt.where(RV.c.ticket_id == ticket_id)
    return [_d(r) for r in (await conn.execute(stmt)).all()]


async def insert_review(tx: Tx, values: dict[str, Any]) -> None:
    await tx.conn.execute(RV.insert().values(**values))


# --- work queues ------------------------------------------------------------------------------


async def get_queue(
    conn: AsyncConnection, project: dict[str, Any], queue_id: str
) -> dict[str, Any]:
    stmt = select(WQ).where((WQ.c.id == queue_id) & (WQ.c.project_id == project["id"]))
    row = (await conn.execute(stmt)).first()
    if row is None:
        raise NotFound(
            f"No work queue '{queue_id}' in project '{project['slug']}'. List them with "
            f"GET /api/projects/{project['slug']}/discover/queues."
        )
    return _d(row)


async def find_queue(conn: AsyncConnection, queue_id: str) -> dict[str, Any] | None:
    row = (await conn.execute(select(WQ).where(WQ.c.id == queue_id))).first()
    return _d(row) if row else None


async def queues_of(conn: AsyncConnection, project_id: str) -> list[dict[str, Any]]:
    stmt = select(WQ).where(WQ.c.project_id == project_id).order_by(WQ.c.created_at, WQ.c.id)
    return [_d(r) for r in (await conn.execute(stmt)).all()]


async def running_queues(conn: AsyncConnection) -> list[dict[str, Any]]:
    return [_d(r) for r in (await conn.execute(select(WQ).where(WQ.c.status == "running"))).all()]


async def insert_queue(tx: Tx, values: dict[str, Any]) -> None:
    await tx.conn.execute(WQ.insert().values(**values))


async def update_queue(tx: Tx, queue_id: str, values: dict[str, Any]) -> dict[str, Any]:
    await tx.conn.execute(
        update(WQ).where(WQ.c.id == queue_id).values(updated_at=utc_now(), **values)
    )
    row = (await tx.conn.execute(select(WQ).where(WQ.c.id == queue_id))).first()
    assert row is not None
    return _d(row)


async def delete_queue(tx: Tx, queue_id: str) -> None:
    await tx.conn.execute(WQ.delete().where(WQ.c.id == queue_id))


async def link_graph(conn: AsyncConnection, project_id: str) -> list[tuple[int, list[int]]]:
    """Every ticket number of a project with its blockers (for existence and cycle checks)."""
    stmt = select(TK.c.number, TK.c.blocked_by).where(TK.c.project_id == project_id)
    return [(r.number, list(r.blocked_by or [])) for r in (await conn.execute(stmt)).all()]
