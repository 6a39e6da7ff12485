"""The SQL the writer sends for a batch's events, apart from how it batches them.

``store.writer`` is two ideas: a loop that takes jobs in queue order and commits them in
batches (``Writer``, ``Tx``), and the statements such a batch ends with: a run's numbering read
(and, on PostgreSQL, its row locked), event ids drawn or counted, the events inserted, the run
rows touched, and on PostgreSQL the commit-order lock and the ``NOTIFY`` of the ids. The second
lives here so each can be read alone; the module docstring of ``store.writer`` says why these
statements are what they are (lock order, id order across processes).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection

from codeyard.domain.errors import NotFound
from codeyard.domain.events import StoredEvent, utc_now
from codeyard.store import schema, sqlite_driver
from codeyard.store.sqlite_commit import RunRowUpdates
from codeyard.store.statement import RowWrites, Statement


def insert_events_sql(paramstyle: str) -> str:
    """The raw INSERT for ``executemany``, in the driver's own placeholder style."""
    marks = {
        "qmark": ["?"] * 7,
        "numeric_dollar": [f"${i}" for i in range(1, 8)],
    }.get(paramstyle, ["%s"] * 7)
    return (
        "INSERT INTO events (id, run_id, project_id, seq, type, ts, data) "
        f"VALUES ({', '.join(marks)})"
    )


#: The run-row UPDATE of a batch that only appended events, on PostgreSQL: every such run of a
#: batch in one ``executemany``.
_PG_TOUCH_RUN = "UPDATE runs SET last_seq = $1, updated_at = $2 WHERE id = $3"

#: ``pg_advisory_xact_lock`` key every PostgreSQL writer batch holds until it commits, so
#: event ids commit in id order across processes (see ``store.writer``'s docstring).
COMMIT_ORDER_LOCK = 0x636F_6465_7964  # "codeyd"

#: ``pg_advisory_xact_lock`` key a PostgreSQL writer batch with jobs holds from its start to its
#: commit, so jobs of all processes run one batch at a time (see ``store.writer``'s docstring).
JOB_ORDER_LOCK = 0x636F_6465_796A  # "codeyj"

#: The PostgreSQL channel that carries committed event ids between processes.
NOTIFY_CHANNEL = "codeyard_events"
#: NOTIFY payloads must stay under 8000 bytes: ids are sent in chunks below that.
_NOTIFY_CHUNK = 7000


@dataclass(slots=True)
class RunCursor:
    last_seq: int
    project_id: str
    attempt: int = 0


_CURSOR_OF = select(schema.runs.c.last_seq, schema.runs.c.project_id, schema.runs.c.attempt).where(
    schema.runs.c.id == bindparam("run_id")
)
_CURSOR: Statement[tuple[int, str, int]] = Statement(_CURSOR_OF)
_CURSOR_LOCKED: Statement[tuple[int, str, int]] = Statement(_CURSOR_OF.with_for_update())
#: A batch's run-row updates with columns given with its events.
_RUN_WRITES = RowWrites(schema.runs)


def is_shared(conn: AsyncConnection) -> bool:
    """PostgreSQL: other processes may write the same tables at the same time."""
    return conn.dialect.name == "postgresql"


async def read_cursor(conn: AsyncConnection, run_id: str) -> RunCursor:
    """A run's numbering and attempt as stored; on PostgreSQL the row stays locked until the
    batch commits, so two writer processes number one run's events one after the other."""
    stmt = _CURSOR_LOCKED if is_shared(conn) else _CURSOR
    row = await stmt.first(conn, run_id=run_id)
    if row is None:
        raise NotFound(f"Run {run_id} does not exist.")
    return RunCursor(*row)


#: Takes the commit-order lock and draws ``$2`` ids, in one statement (the lock is taken
#: before any id is drawn: a CTE with a volatile function is never folded into its parent).
_DRAW_IDS_SQL = (
    "WITH commit_order AS (SELECT pg_advisory_xact_lock($1)) "
    "SELECT nextval('events_id_seq') FROM commit_order, generate_series(1, $2)"
)

#: Takes the commit-order lock, draws the ids, inserts the events (one array per column, ``$2``
#: to ``$7``: each event gets the id of its rank) and announces them as ``$9:<ids>`` on channel
#: ``$8``, in one statement; returns the ids, ascending. For batches whose announcement fits in
#: one ``NOTIFY`` (:data:`_ONE_STATEMENT_MAX`); a CTE with a volatile function or a data-modifying
#: statement is evaluated once, so the insert and the announcement see the same ids.
_NUMBER_INSERT_AND_NOTIFY_SQL = (
    "WITH commit_order AS (SELECT pg_advisory_xact_lock($1)), "
    "drawn AS (SELECT nextval('events_id_seq') AS id FROM commit_order, "
    "generate_series(1, cardinality($2::text[]))), "
    "numbered AS (SELECT id, row_number() OVER (ORDER BY id) AS n FROM drawn), "
    "inserted AS (INSERT INTO events (id, run_id, project_id, seq, type, ts, data) "
    "SELECT numbered.id, r.run_id, r.project_id, r.seq, r.type, r.ts, r.data "
    "FROM unnest($2::text[], $3::text[], $4::int[], $5::text[], $6::text[], $7::text[]) "
    "WITH ORDINALITY AS r(run_id, project_id, seq, type, ts, data, n) JOIN numbered USING (n)) "
    "SELECT pg_notify($8, $9 || ':' || string_agg(id::text, ',' ORDER BY id)), "
    "array_agg(id ORDER BY id) FROM numbered"
)
#: Events of a batch that takes the one statement above at most (ids of up to 19 digits and a
#: comma each stay under ``_NOTIFY_CHUNK``); a larger batch draws, then inserts and announces.
_ONE_STATEMENT_MAX = 300

#: Inserts a batch's events (one array per column) and announces them (``$8``: the channel,
#: ``$9``: the payloads), in one statement; PostgreSQL delivers the announcements at commit.
_INSERT_AND_NOTIFY_SQL = (
    "WITH inserted AS (INSERT INTO events (id, run_id, project_id, seq, type, ts, data) "
    "SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::int[], $5::text[], "
    "$6::text[], $7::text[])) "
    "SELECT pg_notify($8, payload) FROM unnest($9::text[]) AS payload"
)

#: Takes the job-order lock, waiting for it (the held lane, and SQL for tests to hold it).
JOB_LOCK_SQL = "SELECT pg_advisory_xact_lock(:key)"
#: Takes the job-order lock if it is free: true if taken (a batch's first try).
TRY_JOB_LOCK_SQL = "SELECT pg_try_advisory_xact_lock(:key)"


async def lock_runs(
    conn: AsyncConnection, run_ids: Iterable[str], cursors: dict[str, RunCursor]
) -> None:
    """Lock the rows of the runs a batch appends to, in id order, before anything else:
    two writer processes whose batches touch the same runs then queue instead of deadlocking.
    (A job's own runs are locked when it first touches them.)"""
    ids = sorted(set(run_ids))
    if not ids:
        return
    stmt = (
        select(schema.runs.c.id, schema.runs.c.last_seq, schema.runs.c.project_id)
        .add_columns(schema.runs.c.attempt)
        .where(schema.runs.c.id.in_(ids))
        .order_by(schema.runs.c.id)
        .with_for_update()
    )
    for row in (await conn.execute(stmt)).all():
        cursors[row.id] = RunCursor(row.last_seq, row.project_id, row.attempt)


class IdPool:
    """Event ids of one batch, handed out in ascending order in the order events are
    numbered, so a run's ids grow with its ``seq`` (streams rely on it). SQLite: the writer's
    counter. PostgreSQL: 0 until the end of the batch, when the batch's ids are drawn under the
    commit-order lock and given to its events in the order they were numbered (``insert_numbered``).
    """

    def __init__(self, conn: AsyncConnection, next_id: int) -> None:
        self._conn = conn
        self.next_id = next_id

    async def take(self, count: int) -> list[int]:
        if is_shared(self._conn):
            return [0] * count
        ids = list(range(self.next_id, self.next_id + count))
        self.next_id += count
        return ids


def notify_payloads(token: str, ids: Sequence[int]) -> list[str]:
    """``token:id,id,…`` chunks (the token lets the writing process skip its own)."""
    out: list[str] = []
    chunk: list[str] = []
    size = len(token) + 1
    for event_id in ids:
        part = str(event_id)
        if chunk and size + len(part) + 1 > _NOTIFY_CHUNK:
            out.append(f"{token}:{','.join(chunk)}")
            chunk, size = [], len(token) + 1
        chunk.append(part)
        size += len(part) + 1
    if chunk:
        out.append(f"{token}:{','.join(chunk)}")
    return out


def event_rows(staged: list[StoredEvent]) -> list[tuple[Any, ...]]:
    """The events' rows in the column order of :func:`insert_events_sql`."""
    return [(e.id, e.run_id, e.project_id, e.seq, e.type, e.ts, e.data_json) for e in staged]


async def flush_and_commit(
    conn: AsyncConnection,
    staged: list[StoredEvent],
    cursors: dict[str, RunCursor],
    run_values: dict[str, dict[str, Any]],
    run_rows: RunRowUpdates,
) -> None:
    """SQLite: a batch's events inserted, its runs' rows updated and the transaction's
    ``COMMIT``, in one trip to the driver's thread (``sqlite_driver.commit_with``; each was a
    trip of its own). The caller's ``begin`` block must end right after (its commit then sends
    nothing). Run values that plain SQL cannot carry (``run_rows.covers``) go through
    SQLAlchemy first; a transaction with nothing to flush commits as before. PostgreSQL takes
    ``touch_runs_shared`` and ``insert_numbered``."""
    driver = (await conn.get_raw_connection()).driver_connection
    if not isinstance(driver, sqlite_driver.LateBeginConnection):  # ``store.db``'s engines
        raise TypeError(f"the SQLite writer needs store.sqlite_driver's driver, not {driver!r}")
    last: list[sqlite_driver.LastStatement] = []
    if staged:
        last.append((insert_events_sql("qmark"), event_rows(staged), True))
    now = utc_now()
    for run_id, values in run_values.items():
        cur = cursors.get(run_id)
        if cur is None:
            continue
        if run_rows.covers(values):
            last.append((*run_rows.statement(run_id, cur.last_seq, now, values), False))
            continue
        await _RUN_WRITES.update(
            conn, run_id, {"last_seq": cur.last_seq, "updated_at": now, **values}
        )
    if last:
        await sqlite_driver.commit_with(driver, last)


async def touch_runs_shared(
    conn: AsyncConnection,
    cursors: dict[str, RunCursor],
    run_values: dict[str, dict[str, Any]],
) -> None:
    """PostgreSQL: a batch's run rows updated (numbering, columns given with the events)."""
    now = utc_now()
    touched: list[tuple[int, str, str]] = []
    for run_id, values in run_values.items():
        cur = cursors.get(run_id)
        if cur is None:
            continue
        if not values:
            touched.append((cur.last_seq, now, run_id))
            continue
        await _RUN_WRITES.update(
            conn, run_id, {"last_seq": cur.last_seq, "updated_at": now, **values}
        )
    if touched:
        await conn.exec_driver_sql(_PG_TOUCH_RUN, touched)


async def insert_numbered(conn: AsyncConnection, staged: list[StoredEvent], token: str) -> None:
    """Under the commit-order lock (taken here, released by the commit): give ``staged``
    their ids, ascending in order, insert and announce them."""
    if len(staged) <= _ONE_STATEMENT_MAX:  # one round trip under the lock, not two
        params = (COMMIT_ORDER_LOCK, *event_columns(staged)[1:], NOTIFY_CHANNEL, token)
        result = await conn.exec_driver_sql(_NUMBER_INSERT_AND_NOTIFY_SQL, params)
        _notified, ids = tuple(result.one())
        give_ids(staged, ids)
        return
    drawn = await conn.exec_driver_sql(_DRAW_IDS_SQL, (COMMIT_ORDER_LOCK, len(staged)))
    give_ids(staged, sorted(drawn.scalars()))
    cols = event_columns(staged)
    payloads = notify_payloads(token, cols[0])
    await conn.exec_driver_sql(_INSERT_AND_NOTIFY_SQL, (*cols, NOTIFY_CHANNEL, payloads))


def give_ids(staged: list[StoredEvent], ids: Sequence[int]) -> None:
    """The k-th smallest of the drawn ids to the k-th event numbered."""
    for event, event_id in zip(staged, ids, strict=True):
        event.id = event_id
        event._json = event._frame = None  # nothing was rendered with the placeholder


def event_columns(staged: list[StoredEvent]) -> tuple[list[Any], ...]:
    """The events' rows as one list per column (``unnest`` takes arrays)."""
    return (
        [e.id for e in staged],
        [e.run_id for e in staged],
        [e.project_id for e in staged],
        [e.seq for e in staged],
        [e.type for e in staged],
        [e.ts for e in staged],
        [e.data_json for e in staged],
    )
