"""The one serialized writer, with group commit.

Every write to the database is a *job* handed to :meth:`Writer.run`. One task takes the jobs
in arrival order and runs as many as are waiting in a single transaction (each in its own
savepoint, so one failing job rolls back alone; a batch of one job takes none, and the
transaction's rollback undoes it). Events emitted by jobs are numbered here — a
global ``id`` and a per-run ``seq`` — inserted with one ``executemany`` per batch, and handed to
``on_commit`` (the hub) only after the commit. This is why token deltas cost microseconds, and why
a client can never see an event that a crash could take back.

On SQLite a batch of plain appends (the common case: agent events) skips SQLAlchemy: numbered
here, it is committed in one hop by a thread with its own ``sqlite3`` connection
(``store.sqlite_commit``); batches with jobs, and the first append to a run this writer has not
numbered yet, take the SQLAlchemy connection. Batches still run one at a time, so numbering,
commit order and the hand-off after commit are the same on both paths.

A batch is bounded in time as well as in items: once its jobs have run ``batch_seconds``, it
takes no further item and commits; what it did not take is the next batch's start, ahead of
anything queued since (``Writer._carry``; the held lane's front on PostgreSQL). Under load a
job's statements wait for the event loop between their hops, and a batch of every job waiting
(35-100 of them while hundreds of runs start) held its events uncommitted for up to a second,
then woke all its callers at once. Queue order, numbering and commit order are unchanged: the
items left are the batch's last ones, and nothing passes them. A batch of appends alone is
never cut (numbering them inline costs microseconds).

On PostgreSQL several processes may write (API servers, workers; issue 16): event ids then come
from the ``events_id_seq`` sequence, a run's numbering is read under a row lock in every batch
(never from this process's memory), and each commit announces its event ids with ``NOTIFY``
(``events.pg_fanout`` turns them into hub events in the other processes). Writes made for a run
attempt are fenced (``store.fencing``).

Ids drawn from a sequence are only ordered when drawn: a batch that drew id 100 could commit
after another process's batch with id 101, and a stream over all runs, which sends ids in
ascending order and skips those it has passed (``events.stream``; a client's ``Last-Event-ID``
too), would never show event 100. So a PostgreSQL batch draws its ids last: the jobs run, the
run rows are locked and updated and the events numbered per run (``seq``, under the run row's
lock) with no id; then one statement takes a transaction-level advisory lock
(:data:`COMMIT_ORDER_LOCK`), draws the batch's ids, inserts the events and announces them, and
the commit releases the lock. Batches of every process draw and commit one after the other, so
commit order is id order cluster-wide, but each holds the lock for one statement and the
commit, not for its jobs (a writer process that loses the CPU mid-batch no longer stalls the
others). Taken last, after every row lock of the batch, the lock is never held by a batch that
waits for a row.

Jobs read rows and write what they decided (``store.runs.lock`` reads without a row lock: "the
writer is serialized"), so batches with jobs stay serialized cluster-wide: such a batch first
takes a second advisory lock (:data:`JOB_ORDER_LOCK`), before any row lock, held to its commit.
Batches of plain appends (agent output: most events) do not take it; they lock their runs' rows
in id order and write only events and the columns given with them. A job that locks rows in
another order than a concurrent batch of appends can still deadlock with it; PostgreSQL then
fails one transaction, and that batch is run again (:data:`_DEADLOCK_RETRIES`).

A writer runs its batches one after another, so a batch waiting for the job-order lock would
hold up every append queued behind it: the agent output of all the process's runs. So a batch
with jobs only *tries* the lock (``pg_try_advisory_xact_lock``, its first statement). If another
process holds it, the batch rolls back having done nothing and is split in queue order
(``Writer._split``): its jobs, and what may not pass them, go to the *held lane* (a second
connection and task: it commits them in queue order, each batch waiting for the lock as
before); the appends that may pass them are committed at once. While the held lane has work,
every new job joins it, and each new append passes it or joins it. An append passes when no
held item is an append to its run or a job without a fence (that could write to any run), and
every held job is fenced (``store.fencing``) on another run than the append's and on another
attempt than the append's own fence. Why a run's events keep their queue order: appends queued
before a job never wait for it; an append to the run a held job writes for waits; and a job
fenced on run X's attempt was submitted by a task of that attempt (the fence is a context
variable, copied into the tasks an attempt starts), so an append under another fence or none
came from another task (no task switches fences with a write of its own in flight), and its
place in the queue relative to the job is only the order in which two tasks got there. The one
case left is a job fenced on X writing to another run Y while appends to Y pass it: no job
does that (an attempt's jobs write to its run), and ``Tx`` counts (``Writer.reordered``) and
logs it if one ever does. A job that writes to no run (a worker's heartbeat) is fenced on
``fencing.NO_RUN``, a run no append is for: appends pass it. The two lanes are two
transactions of one process, as two processes would be: row locks, the commit-order lock, the
fencing checks and the order of the ``NOTIFY`` announcements keep numbering, commit order and
the hand-off right between them. SQLite has one writer and no such lock: nothing changes there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from codeyard.domain.errors import NotFound
from codeyard.domain.events import NewEvent, StoredEvent, utc_now, validate_new
from codeyard.store import fencing, schema, sqlite_commit

log = logging.getLogger(__name__)
T = TypeVar("T")


def _insert_events_sql(paramstyle: str) -> str:
    """The raw INSERT for ``executemany``, in the driver's own placeholder style."""
    marks = {
        "qmark": ["?"] * 7,
        "numeric_dollar": [f"${i}" for i in range(1, 8)],
    }.get(paramstyle, ["%s"] * 7)
    return (
        "INSERT INTO events (id, run_id, project_id, seq, type, ts, data) "
        f"VALUES ({', '.join(marks)})"
    )


#: The run-row UPDATE of a batch that only appended events (SQLite fast path, see ``_flush``).
_SQLITE_TOUCH_RUN = "UPDATE runs SET last_seq = ?, updated_at = ? WHERE id = ?"
#: The same on PostgreSQL, for every such run of a batch in one ``executemany``.
_PG_TOUCH_RUN = "UPDATE runs SET last_seq = $1, updated_at = $2 WHERE id = $3"


#: ``pg_advisory_xact_lock`` key every PostgreSQL writer batch holds until it commits, so
#: event ids commit in id order across processes (see the module's docstring).
COMMIT_ORDER_LOCK = 0x636F_6465_7964  # "codeyd"

#: ``pg_advisory_xact_lock`` key a PostgreSQL writer batch with jobs holds from its start to its
#: commit, so jobs of all processes run one batch at a time (see the module's docstring).
JOB_ORDER_LOCK = 0x636F_6465_796A  # "codeyj"

#: How long a batch's jobs run before it takes no more items and commits (``Writer``).
BATCH_SECONDS = 0.025

#: The PostgreSQL channel that carries committed event ids between processes.
NOTIFY_CHANNEL = "codeyard_events"
#: NOTIFY payloads must stay under 8000 bytes: ids are sent in chunks below that.
_NOTIFY_CHUNK = 7000


@dataclass(slots=True)
class _RunCursor:
    last_seq: int
    project_id: str
    attempt: int = 0


def _shared(conn: AsyncConnection) -> bool:
    """PostgreSQL: other processes may write the same tables at the same time."""
    return conn.dialect.name == "postgresql"


async def _read_cursor(conn: AsyncConnection, run_id: str) -> _RunCursor:
    """A run's numbering and attempt as stored; on PostgreSQL the row stays locked until the
    batch commits, so two writer processes number one run's events one after the other."""
    stmt = select(schema.runs.c.last_seq, schema.runs.c.project_id, schema.runs.c.attempt).where(
        schema.runs.c.id == run_id
    )
    if _shared(conn):
        stmt = stmt.with_for_update()
    row = (await conn.execute(stmt)).first()
    if row is None:
        raise NotFound(f"Run {run_id} does not exist.")
    return _RunCursor(row.last_seq, row.project_id, row.attempt)


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
_JOB_LOCK_SQL = "SELECT pg_advisory_xact_lock(:key)"
#: Takes the job-order lock if it is free: true if taken (a batch's first try).
_TRY_JOB_LOCK_SQL = "SELECT pg_try_advisory_xact_lock(:key)"


class _JobLockBusy(Exception):
    """A batch's first try found the job-order lock taken: it rolled back having done nothing."""


class _AloneFailed(Exception):
    """The one job of a batch failed: the batch's transaction rolls back, which undoes that job
    as its savepoint would have (a batch of one job takes none: two statements fewer)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


#: Times a PostgreSQL batch is run again after PostgreSQL broke a deadlock by failing it.
_DEADLOCK_RETRIES = 3


def _deadlocked(exc: BaseException) -> bool:
    """Whether ``exc`` is PostgreSQL's ``deadlock_detected`` (this transaction was failed)."""
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None) == "40P01"


async def _lock_runs(
    conn: AsyncConnection, batch: list[_Pending], cursors: dict[str, _RunCursor]
) -> None:
    """Lock the rows of the runs this batch appends to, in id order, before anything else:
    two writer processes whose batches touch the same runs then queue instead of deadlocking.
    (A job's own runs are locked when it first touches them.)"""
    ids = sorted({p.fn.run_id for p in batch if isinstance(p.fn, _Append)})
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
        cursors[row.id] = _RunCursor(row.last_seq, row.project_id, row.attempt)


class _IdPool:
    """Event ids of one batch, handed out in ascending order in the order events are
    numbered, so a run's ids grow with its ``seq`` (streams rely on it). SQLite: the writer's
    counter. PostgreSQL: 0 until the end of the batch, when the batch's ids are drawn under the
    commit-order lock and given to its events in the order they were numbered (``_flush_shared``).
    """

    def __init__(self, conn: AsyncConnection, next_id: int) -> None:
        self._conn = conn
        self.next_id = next_id

    async def take(self, count: int) -> list[int]:
        if _shared(self._conn):
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


class Tx:
    """What a job sees: the open connection, and ``emit`` to add numbered events."""

    def __init__(
        self,
        conn: AsyncConnection,
        writer: Writer,
        next_id: int,
        cursors: dict[str, _RunCursor] | None = None,
        fence: fencing.Fence | None = None,
        pool: _IdPool | None = None,
        passed: set[str] | None = None,
    ) -> None:
        self.conn = conn
        self._writer = writer
        self.next_id = next_id
        self._pool = pool or _IdPool(conn, next_id)
        #: The run attempt the job writes for (``store.fencing``); None: not fenced.
        self.fence = fence
        self.cursors: dict[str, _RunCursor] = cursors if cursors is not None else {}
        self.events: list[StoredEvent] = []
        self.run_values: dict[str, dict[str, Any]] = {}
        self.forgotten: set[str] = set()
        #: Runs whose appends, queued after this job, committed before it (``Writer._split``).
        self._passed = passed

    def _touch(self, run_id: str) -> None:
        """This job writes to ``run_id``: if a later append to it passed the job, say so."""
        if self._passed is not None and run_id in self._passed:
            self._passed.discard(run_id)  # once per run
            self._writer.reordered += 1
            log.warning(
                "a job fenced on %s wrote to run %s after a later append to it had committed",
                self.fence,
                run_id,
            )

    async def _cursor(self, run_id: str) -> _RunCursor:
        cur = self.cursors.get(run_id) or self._writer._cursor_for(run_id)
        if cur is None:
            cur = await _read_cursor(self.conn, run_id)
        else:
            cur = _RunCursor(cur.last_seq, cur.project_id, cur.attempt)
        self.cursors[run_id] = cur
        return cur

    async def check_fence(self, run_id: str) -> None:
        """Refuse this job's write to ``run_id`` if it is for an attempt the run moved past."""
        if self.fence is not None and self.fence.run_id == run_id:
            fencing.check(self.fence, run_id, (await self._cursor(run_id)).attempt)

    async def note_attempt(self, run_id: str, attempt: int) -> None:
        """The job moved the run to ``attempt`` (``store.runs.begin_attempt``)."""
        (await self._cursor(run_id)).attempt = attempt

    def register_run(self, run_id: str, project_id: str) -> None:
        """A run inserted by this job: numbering starts at 1 without a look-up."""
        self.cursors[run_id] = _RunCursor(0, project_id)

    def forget_run(self, run_id: str) -> None:
        """A run deleted by this job: drop its staged events and numbering."""
        self.cursors.pop(run_id, None)
        self.run_values.pop(run_id, None)
        self.events = [e for e in self.events if e.run_id != run_id]
        self.forgotten.add(run_id)

    async def emit(self, run_id: str, events: Sequence[NewEvent]) -> list[StoredEvent]:
        self._touch(run_id)
        cur = await self._cursor(run_id)
        fencing.check(self.fence, run_id, cur.attempt)
        ts = utc_now()
        out = []
        ids = await self._pool.take(len(events))
        for ev, event_id in zip(events, ids, strict=True):
            cur.last_seq += 1
            out.append(
                StoredEvent(
                    event_id, run_id, cur.project_id, cur.last_seq, ev.type, ts, ev.data_json
                )
            )
        self.next_id = self._pool.next_id
        self.events.extend(out)
        self.run_values.setdefault(run_id, {})
        return out

    async def emit_one(
        self, run_id: str, event: NewEvent | str, data: dict[str, Any] | None = None
    ) -> StoredEvent:
        """Emit one event: a model, or (for code not moved to the models yet) a type and its
        data, validated here against that type's model, so an unknown type or a misspelt
        field fails at the emitter either way."""
        if isinstance(event, str):
            event = validate_new(event, data or {})
        return (await self.emit(run_id, [event]))[0]

    def set_run_values(self, run_id: str, values: dict[str, Any]) -> None:
        """Columns written to the run row with this batch's events (one UPDATE per run).
        ``status`` is refused: it changes only through ``store.runs.set_status``."""
        _refuse_status(values)
        self._touch(run_id)
        self.run_values.setdefault(run_id, {}).update(values)


def _stamp(a: _Append, cur: _RunCursor, ids: Sequence[int]) -> list[StoredEvent]:
    """An append's events numbered: the given ids, seqs after the run's last (the cursor moves
    on)."""
    ts = utc_now()
    seq, project_id, run_id = cur.last_seq, cur.project_id, a.run_id
    stored = [
        StoredEvent(ids[k], run_id, project_id, seq + k + 1, e.type, ts, e.data_json)
        for k, e in enumerate(a.events)
    ]
    cur.last_seq += len(stored)
    return stored


def _failed(batch: list[_Pending], exc: Exception) -> None:
    """A batch whose commit failed: nothing of it happened; every caller gets the error."""
    log.error("write batch of %d jobs failed", len(batch), exc_info=exc)
    for pending in batch:
        if not pending.future.done():
            pending.future.set_exception(exc)


def _refuse_status(values: dict[str, Any] | None) -> None:
    if values and "status" in values:
        raise ValueError("Run status changes go through store.runs.set_status(), not run values.")


Job = Callable[[Tx], Awaitable[Any]]


def _new_future() -> asyncio.Future[Any]:
    return asyncio.get_running_loop().create_future()


@dataclass(slots=True)
class _Append:
    """A plain ``Writer.append``: handled inline by the batch, without a job or a ``Tx``."""

    run_id: str
    events: Sequence[NewEvent]
    run_values: dict[str, Any] | None


@dataclass(slots=True)
class _Pending:
    fn: Job | _Append
    savepoint: bool
    #: The attempt the caller writes for, taken from its context when it submitted.
    fence: fencing.Fence | None = field(default_factory=fencing.current.get)
    future: asyncio.Future[Any] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    #: A job's: the runs of appends queued after it that committed before it (``_split``).
    passed: set[str] | None = None


class Writer:
    def __init__(
        self,
        engine: AsyncEngine,
        on_commit: Callable[[list[StoredEvent]], None],
        batch_max: int = 5000,
        *,
        token: str | None = None,
        batch_seconds: float = BATCH_SECONDS,
    ) -> None:
        self._engine = engine
        self._on_commit = on_commit
        self._batch_max = batch_max
        self._batch_seconds = batch_seconds
        self._queue: asyncio.Queue[_Pending | None] = asyncio.Queue()
        #: What the last batch's time bound left, in queue order: the next batch starts with it.
        self._carry: list[_Pending] = []
        self._cursors: dict[str, _RunCursor] = {}
        self._next_id = 1
        self._task: asyncio.Task[None] | None = None
        # One connection kept for the writer's whole life: checking one out of the pool for
        # every batch (and resetting it on return) costs more than a small batch's inserts.
        self._conn: AsyncConnection | None = None
        self.batches = 0
        #: SQLite only: the thread that commits batches of plain appends in one hop.
        self._direct: sqlite_commit.CommitThread | None = None
        self._run_rows = sqlite_commit.RunRowUpdates(schema.runs, engine.dialect)
        #: Names this process in its NOTIFY payloads (PostgreSQL), so it skips its own events.
        self.token = token or uuid.uuid4().hex[:12]
        # PostgreSQL: the held lane (see the module's docstring). Jobs found waiting for the
        # job-order lock, and what may not pass them, committed in queue order on a second
        # connection while this writer's task goes on committing the appends that may.
        self._held: list[_Pending] = []
        self._held_batch: list[_Pending] = []
        self._held_task: asyncio.Task[None] | None = None
        self._held_conn: AsyncConnection | None = None
        #: Appends committed before a job queued ahead of them (tests, diagnostics).
        self.passed = 0
        #: Jobs that wrote to a run whose later append had passed them (expected: never).
        self.reordered = 0

    @property
    def engine(self) -> AsyncEngine:
        """The database this writer writes to."""
        return self._engine

    def _cursor_for(self, run_id: str) -> _RunCursor | None:
        """This writer's numbering of a run; never on PostgreSQL, where others write too."""
        if self._engine.dialect.name == "postgresql":  # as ``_shared``, whatever the lane
            return None
        return self._cursors.get(run_id)

    async def start(self) -> None:
        async with self._engine.connect() as conn:
            max_id = (await conn.execute(text("SELECT MAX(id) FROM events"))).scalar()
        self._next_id = int(max_id or 0) + 1
        path = sqlite_commit.file_path(self._engine)
        if path is not None:
            direct = sqlite_commit.CommitThread(path, _insert_events_sql("qmark"))
            await direct.start()
            self._direct = direct
        self._task = asyncio.create_task(self._loop(), name="codeyard-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._queue.put_nowait(None)
            await self._task
            self._task = None
        if self._direct is not None:
            await self._direct.stop()
            self._direct = None
        await self._drop_connection()
        await self._drop_connection(held=True)

    async def _connection(self, held: bool = False) -> AsyncConnection:
        if held:
            if self._held_conn is None:
                self._held_conn = await self._engine.connect()
            return self._held_conn
        if self._conn is None:
            self._conn = await self._engine.connect()
        return self._conn

    async def _drop_connection(self, held: bool = False) -> None:
        """Close a lane's connection (after a failed batch it may be unusable)."""
        if held:
            conn, self._held_conn = self._held_conn, None
        else:
            conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def run(self, fn: Callable[[Tx], Awaitable[T]], *, savepoint: bool = True) -> T:
        """Run ``fn`` inside the next batch's transaction; returns its result after commit.

        ``savepoint=False`` is for jobs that only emit events and set run values (no SQL of
        their own): they need no rollback point, which keeps event appends cheap.
        """
        result: T = await self._submit(_Pending(fn, savepoint))
        return result

    async def append(
        self, run_id: str, events: Sequence[NewEvent], run_values: dict[str, Any] | None = None
    ) -> list[StoredEvent]:
        """Append events to a run's log (and optionally set run columns) in the next batch.

        The same as ``run`` with a job calling ``tx.emit`` (and ``tx.set_run_values``), but
        numbered inline by the batch: with many small appends in flight, the per-job machinery
        cost more than the inserts.
        """
        _refuse_status(run_values)
        stored: list[StoredEvent] = await self._submit(
            _Pending(_Append(run_id, events, run_values), False)
        )
        return stored

    async def _submit(self, pending: _Pending) -> Any:
        if self._task is None:
            raise RuntimeError("The writer is not running.")
        self._queue.put_nowait(pending)  # unbounded: never waits
        return await pending.future

    async def _loop(self) -> None:
        stopping = False
        while not stopping or self._carry:
            batch, self._carry = self._carry, []
            if not batch:
                first = await self._queue.get()
                if first is None:
                    break
                batch = [first]
            while not stopping and len(batch) < self._batch_max and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            await self._dispatch(batch)
        held = self._held_task
        if held is not None:  # what waits for the job-order lock is committed before stopping
            await held

    async def _dispatch(self, batch: list[_Pending]) -> None:
        """Commit ``batch``; on PostgreSQL, what waits for the job-order lock goes to the held
        lane and the appends that may pass it are committed here meanwhile."""
        if self._held_task is None and await self._run_batch(batch, try_job_lock=True):
            return
        # The held lane is busy, or the job-order lock is and nothing of the batch ran.
        passing, holding = self._split(batch)
        if passing:
            await self._run_batch(passing)
        if holding:  # after ``passing`` committed: some were queued before these
            self._held.extend(holding)
            if self._held_task is None:
                self._held_task = asyncio.create_task(self._drain_held(), name="codeyard-held")

    def _split(self, batch: list[_Pending]) -> tuple[list[_Pending], list[_Pending]]:
        """``batch`` in queue order, against what the held lane has not committed yet: the
        appends that may commit before it, and the rest (jobs always), for the held lane.

        An append may pass the held items when none is an append to its run, none is a job
        without a fence (it could write to any run), and every held job is fenced on another
        run's attempt than the append's run and than the append's own fence: such a job was
        submitted from another task (an attempt's context is copied into the tasks it starts),
        so the queue order between the two is only the order in which two tasks got there."""
        held = [*self._held_batch, *self._held]
        jobs = [p for p in held if not isinstance(p.fn, _Append)]
        runs = {p.fn.run_id for p in held if isinstance(p.fn, _Append)}
        fences = {p.fence for p in jobs}
        barrier = None in fences
        runs |= {f.run_id for f in fences if f is not None}
        passing: list[_Pending] = []
        holding: list[_Pending] = []
        for pending in batch:
            fn = pending.fn
            if isinstance(fn, _Append):
                if not barrier and fn.run_id not in runs and pending.fence not in fences:
                    passing.append(pending)
                    self.passed += 1 if jobs else 0
                    for job in jobs:
                        assert job.passed is not None  # given below, when it was held
                        job.passed.add(fn.run_id)
                    continue
                runs.add(fn.run_id)
            else:
                pending.passed = set()  # the same set reaches the job's ``Tx``
                jobs.append(pending)
                fences.add(pending.fence)
                if pending.fence is None:
                    barrier = True
                else:
                    runs.add(pending.fence.run_id)
            holding.append(pending)
        return passing, holding

    async def _drain_held(self) -> None:
        """The held lane: its batches, in queue order, each waiting for the job-order lock."""
        try:
            while self._held:
                batch = self._held[: self._batch_max]
                del self._held[: len(batch)]
                self._held_batch = batch
                try:
                    await self._run_batch(batch, held=True)
                finally:
                    self._held_batch = []
        finally:
            self._held_task = None

    async def _run_batch(
        self, batch: list[_Pending], *, held: bool = False, try_job_lock: bool = False
    ) -> bool:
        """Commit ``batch`` (on the held lane's connection if ``held``). False: the job-order
        lock was busy (``try_job_lock``) and nothing of the batch ran."""
        if self._direct is not None and self._direct_ok(batch):
            await self._run_direct(self._direct, batch)
            return True
        for tries_left in range(_DEADLOCK_RETRIES, -1, -1):
            try:
                done = await self._transact(batch, held=held, try_job_lock=try_job_lock)
            except _JobLockBusy:
                return False
            except _AloneFailed as failed:  # rolled back: that job alone, reported to its caller
                self._committed(self._next_id, {}, [], [(batch[0], False, failed.error)])
                return True
            except Exception as exc:  # the commit failed: nothing of this batch happened
                if tries_left and _deadlocked(exc):  # PostgreSQL failed it to break a deadlock
                    log.info("write batch of %d jobs deadlocked; running it again", len(batch))
                    continue
                await self._drop_connection(held)
                _failed(batch, exc)
                return True
            self._committed(*done)
            rest = batch[len(done[3]) :]  # one outcome per item taken: the time bound left these
            if held:
                self._held[:0] = rest
            else:
                self._carry[:0] = rest
            return True
        return True  # not reached: the last try returns

    async def _transact(
        self, batch: list[_Pending], *, held: bool = False, try_job_lock: bool = False
    ) -> tuple[int, dict[str, _RunCursor], list[StoredEvent], list[tuple[_Pending, bool, Any]]]:
        """Run ``batch`` in one transaction; what ``_committed`` takes, once it committed."""
        outcomes: list[tuple[_Pending, bool, Any]] = []
        staged: list[StoredEvent] = []
        cursors: dict[str, _RunCursor] = {}
        run_values: dict[str, dict[str, Any]] = {}
        until, ran_job = time.monotonic() + self._batch_seconds, False
        conn = await self._connection(held)
        shared = _shared(conn)
        alone = len(batch) == 1
        async with conn.begin():
            pool = _IdPool(conn, self._next_id)
            if shared:
                if any(not isinstance(p.fn, _Append) for p in batch):  # before any row lock
                    if not try_job_lock:
                        await conn.execute(text(_JOB_LOCK_SQL), {"key": JOB_ORDER_LOCK})
                    elif not (
                        await conn.execute(text(_TRY_JOB_LOCK_SQL), {"key": JOB_ORDER_LOCK})
                    ).scalar():
                        raise _JobLockBusy  # rolls back: nothing was done
                await _lock_runs(conn, batch, cursors)  # the appends' rows, once per batch
            for pending in batch:
                if ran_job and time.monotonic() >= until:  # the rest starts the next batch
                    break
                if isinstance(pending.fn, _Append):
                    try:
                        stored = await self._number(conn, pending.fn, cursors, pool, pending.fence)
                    except Exception as exc:  # no such run, or a stale attempt
                        if _deadlocked(exc):
                            raise
                        outcomes.append((pending, False, exc))
                        continue
                    staged.extend(stored)
                    values = run_values.setdefault(pending.fn.run_id, {})
                    if pending.fn.run_values:
                        values.update(pending.fn.run_values)
                    outcomes.append((pending, True, stored))
                    continue
                ran_job = True  # a job is taken: the next item waits if its time is up
                copies = {
                    k: _RunCursor(v.last_seq, v.project_id, v.attempt) for k, v in cursors.items()
                }
                tx = Tx(conn, self, pool.next_id, copies, pending.fence, pool, pending.passed)
                try:
                    if pending.savepoint and not alone:
                        async with conn.begin_nested():
                            result = await pending.fn(tx)
                    else:
                        result = await pending.fn(tx)
                except Exception as exc:  # the job's own failure: reported to its caller
                    if shared and _deadlocked(exc):  # the whole batch runs again
                        raise
                    if alone and pending.savepoint:
                        raise _AloneFailed(exc) from exc
                    outcomes.append((pending, False, exc))
                    continue
                for run_id in tx.forgotten:
                    staged = [e for e in staged if e.run_id != run_id]
                    run_values.pop(run_id, None)
                    cursors.pop(run_id, None)
                    self._cursors.pop(run_id, None)
                cursors.update(tx.cursors)
                staged.extend(tx.events)
                for run_id, values in tx.run_values.items():
                    run_values.setdefault(run_id, {}).update(values)
                outcomes.append((pending, True, result))
            if shared:
                await self._flush_shared(conn, staged, cursors, run_values)
            else:
                await self._flush(conn, staged, cursors, run_values)
        return pool.next_id, cursors, staged, outcomes

    def _committed(
        self,
        next_id: int,
        cursors: dict[str, _RunCursor],
        staged: list[StoredEvent],
        outcomes: list[tuple[_Pending, bool, Any]],
    ) -> None:
        """After a commit: keep the numbering, hand the events to the hub, wake the callers."""
        self._next_id = next_id
        self._cursors.update(cursors)
        self.batches += 1
        if staged:
            try:
                self._on_commit(staged)
            except Exception:  # a broken subscriber must not lose the writer
                log.exception("publishing %d events failed", len(staged))
        for pending, ok, value in outcomes:
            if pending.future.done():
                continue
            if ok:
                pending.future.set_result(value)
            else:
                pending.future.set_exception(value)

    def _direct_ok(self, batch: list[_Pending]) -> bool:
        """Whether the commit thread can take this batch: plain appends only, to runs this
        writer has numbered, setting columns it knows (anything else takes SQLAlchemy, which
        reads what it lacks and reports what is wrong as before)."""
        for pending in batch:
            fn = pending.fn
            if not isinstance(fn, _Append) or fn.run_id not in self._cursors:
                return False
            if fn.run_values and not self._run_rows.covers(fn.run_values):
                return False
        return True

    async def _run_direct(self, thread: sqlite_commit.CommitThread, batch: list[_Pending]) -> None:
        """A batch of plain appends through the SQLite commit thread: numbered here, as
        ``_number`` does, then the rows and run-row updates committed there in one hop."""
        outcomes: list[tuple[_Pending, bool, Any]] = []
        staged: list[StoredEvent] = []
        cursors: dict[str, _RunCursor] = {}
        run_values: dict[str, dict[str, Any]] = {}
        next_id = self._next_id
        for pending in batch:
            a = pending.fn
            assert isinstance(a, _Append)  # checked by _direct_ok
            cur = cursors.get(a.run_id)
            if cur is None:  # a copy, kept only if the batch commits
                known = self._cursors[a.run_id]
                cur = cursors[a.run_id] = _RunCursor(
                    known.last_seq, known.project_id, known.attempt
                )
            try:
                fencing.check(pending.fence, a.run_id, cur.attempt)
            except Exception as exc:  # a stale attempt: refused alone
                outcomes.append((pending, False, exc))
                continue
            stored = _stamp(a, cur, range(next_id, next_id + len(a.events)))
            next_id += len(stored)
            staged.extend(stored)
            values = run_values.setdefault(a.run_id, {})
            if a.run_values:
                values.update(a.run_values)
            outcomes.append((pending, True, stored))
        rows = [(e.id, e.run_id, e.project_id, e.seq, e.type, e.ts, e.data_json) for e in staged]
        now = utc_now()
        updates = [
            self._run_rows.statement(run_id, cursors[run_id].last_seq, now, values)
            for run_id, values in run_values.items()
        ]
        try:
            await thread.commit(rows, updates)
        except Exception as exc:  # the commit failed: nothing of this batch happened
            _failed(batch, exc)
            return
        self._committed(next_id, cursors, staged, outcomes)

    async def _number(
        self,
        conn: AsyncConnection,
        a: _Append,
        cursors: dict[str, _RunCursor],
        pool: _IdPool,
        fence: fencing.Fence | None,
    ) -> list[StoredEvent]:
        """Number an append's events (what ``Tx.emit`` does, without a ``Tx``)."""
        cur = cursors.get(a.run_id)
        if cur is None:  # first use in this batch: a copy, kept only if the batch commits
            known = self._cursor_for(a.run_id)
            if known is None:
                cur = await _read_cursor(conn, a.run_id)
            else:
                cur = _RunCursor(known.last_seq, known.project_id, known.attempt)
            cursors[a.run_id] = cur
        fencing.check(fence, a.run_id, cur.attempt)
        ids = await pool.take(len(a.events))
        return _stamp(a, cur, ids)

    async def _flush(
        self,
        conn: AsyncConnection,
        staged: list[StoredEvent],
        cursors: dict[str, _RunCursor],
        run_values: dict[str, dict[str, Any]],
    ) -> None:
        # SQLite (aiosqlite): each statement through SQLAlchemy costs three hops to the driver's
        # thread (cursor, execute, close); the driver's own ``executemany``/``execute`` cost one.
        # They run on the same connection, inside the transaction SQLAlchemy began.
        driver = None
        if conn.dialect.driver == "aiosqlite":
            driver = (await conn.get_raw_connection()).driver_connection
        rows = [(e.id, e.run_id, e.project_id, e.seq, e.type, e.ts, e.data_json) for e in staged]
        if rows:
            if driver is not None:
                await driver.executemany(_insert_events_sql("qmark"), rows)
            else:
                await conn.exec_driver_sql(_insert_events_sql(conn.dialect.paramstyle), rows)
        now = utc_now()
        for run_id, values in run_values.items():
            cur = cursors.get(run_id)
            if cur is None:
                continue
            if driver is not None and not values:  # only events: no column needs conversion
                await driver.execute(_SQLITE_TOUCH_RUN, (cur.last_seq, now, run_id))
                continue
            await conn.execute(
                update(schema.runs)
                .where(schema.runs.c.id == run_id)
                .values(last_seq=cur.last_seq, updated_at=now, **values)
            )

    async def _flush_shared(
        self,
        conn: AsyncConnection,
        staged: list[StoredEvent],
        cursors: dict[str, _RunCursor],
        run_values: dict[str, dict[str, Any]],
    ) -> None:
        """PostgreSQL: the run rows updated, then, under the commit-order lock (held from here
        to the commit), the batch's ids drawn and given to its events in the order they were
        numbered, and the events inserted and announced (see the module's docstring)."""
        now = utc_now()
        touched: list[tuple[int, str, str]] = []
        for run_id, values in run_values.items():
            cur = cursors.get(run_id)
            if cur is None:
                continue
            if not values:
                touched.append((cur.last_seq, now, run_id))
                continue
            await conn.execute(
                update(schema.runs)
                .where(schema.runs.c.id == run_id)
                .values(last_seq=cur.last_seq, updated_at=now, **values)
            )
        if touched:
            await conn.exec_driver_sql(_PG_TOUCH_RUN, touched)
        if not staged:
            return
        await self._insert_numbered(conn, staged)

    async def _insert_numbered(self, conn: AsyncConnection, staged: list[StoredEvent]) -> None:
        """Under the commit-order lock (taken here, released by the commit): give ``staged``
        their ids, ascending in order, insert and announce them."""
        if len(staged) <= _ONE_STATEMENT_MAX:  # one round trip under the lock, not two
            params = (COMMIT_ORDER_LOCK, *_columns(staged)[1:], NOTIFY_CHANNEL, self.token)
            result = await conn.exec_driver_sql(_NUMBER_INSERT_AND_NOTIFY_SQL, params)
            _notified, ids = tuple(result.one())
            _give_ids(staged, ids)
            return
        drawn = await conn.exec_driver_sql(_DRAW_IDS_SQL, (COMMIT_ORDER_LOCK, len(staged)))
        _give_ids(staged, sorted(drawn.scalars()))
        columns = _columns(staged)
        payloads = notify_payloads(self.token, columns[0])
        await conn.exec_driver_sql(_INSERT_AND_NOTIFY_SQL, (*columns, NOTIFY_CHANNEL, payloads))


def _give_ids(staged: list[StoredEvent], ids: Sequence[int]) -> None:
    """The k-th smallest of the drawn ids to the k-th event numbered."""
    for event, event_id in zip(staged, ids, strict=True):
        event.id = event_id
        event._json = event._frame = None  # nothing was rendered with the placeholder


def _columns(staged: list[StoredEvent]) -> tuple[list[Any], ...]:
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
