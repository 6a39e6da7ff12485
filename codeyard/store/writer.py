"""The one serialized writer, with group commit.

Every write to the database is a *job* handed to :meth:`Writer.run`. One task takes the jobs
in arrival order and runs as many as are waiting in a single transaction (each in its own
savepoint, so one failing job rolls back alone; a batch of one job takes none, and the
transaction's rollback undoes it). Events emitted by jobs are numbered here — a
global ``id`` and a per-run ``seq`` — inserted with one ``executemany`` per batch, and handed to
``on_commit`` (the hub) only after the commit. This is why token deltas cost microseconds, and why
a client can never see an event that a crash could take back.

Urgent jobs go first (issue 15: with 60 agents, an approval's answer waited ~0.25 s p99 behind
their queued appends). A job someone waits on and that writes to one run R
(``run(urgent_for=R)``: an approval's answer, an agent's ask, a tool call's decision) is
committed in a batch of its own ahead of the items queued before it (``store.write_order``), unless
one of them may write to R: an append to R, an item fenced on R (an attempt's jobs write to its
run), an urgent job for R left behind, or a job with neither fence nor declared run (it could
write to any run: it and everything after it keep their place). So R's own writes keep their
queue order, and with it R's ``seq`` numbering; what the urgent job passes writes only other
runs, and was submitted by other tasks, whose order against it is only which got there first.
A batch of jobs running when an urgent job arrives takes no further item (the rest is carried,
as by the time bound); the batch after one taken ahead has its full turn, neither lifted from
nor cut, so a stream of urgent jobs never starves the rest. A job may ask to be called right
after its batch commits (``Tx.after_commit``): an approval's answer wakes an agent waiting in
this process from the writer's own task, not after the request's task is scheduled again.

On SQLite a batch of plain appends (the common case: agent events) skips SQLAlchemy: numbered
in this task, it is committed in one hop by a thread with its own ``sqlite3`` connection
(``store.direct_appends``); batches with jobs, and the first append to a run this writer has not
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
with jobs only *tries* the lock (``pg_try_advisory_xact_lock``, its first statement); if another
process holds it, the batch rolls back having done nothing, and its jobs and what may not pass
them go to the *held lane* (``store.held_lane``: a second connection and task, committing them in
queue order, each batch waiting for the lock) while the appends that may pass them are committed
at once. SQLite has one writer and no such lock: nothing changes there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from codeyard.domain.events import NewEvent, StoredEvent, utc_now, validate_new
from codeyard.store import fencing, schema, sqlite_commit
from codeyard.store.direct_appends import DirectAppends, stamp
from codeyard.store.event_sql import (
    JOB_LOCK_SQL,
    JOB_ORDER_LOCK,
    TRY_JOB_LOCK_SQL,
    IdPool,
    RunCursor,
    flush_and_commit,
    insert_numbered,
    is_shared,
    lock_runs,
    read_cursor,
    touch_runs_shared,
)
from codeyard.store.held_lane import HeldLane
from codeyard.store.job_savepoints import JobSavepoints
from codeyard.store.write_order import Append, Pending, lift

log = logging.getLogger(__name__)
T = TypeVar("T")


#: How long a batch's jobs run before it takes no more items and commits (``Writer``).
BATCH_SECONDS = 0.025


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


class Tx:
    """What a job sees: the open connection, and ``emit`` to add numbered events."""

    def __init__(
        self,
        conn: AsyncConnection,
        writer: Writer,
        next_id: int,
        cursors: dict[str, RunCursor] | None = None,
        fence: fencing.Fence | None = None,
        pool: IdPool | None = None,
        passed: set[str] | None = None,
        urgent_for: str | None = None,
    ) -> None:
        self.conn = conn
        self._writer = writer
        self.next_id = next_id
        self._pool = pool or IdPool(conn, next_id)
        #: The run attempt the job writes for (``store.fencing``); None: not fenced.
        self.fence = fence
        self.cursors: dict[str, RunCursor] = cursors if cursors is not None else {}
        self.events: list[StoredEvent] = []
        self.run_values: dict[str, dict[str, Any]] = {}
        self.forgotten: set[str] = set()
        #: Runs whose writes, queued after this job, committed before it (``HeldLane.split``,
        #: ``write_order.lift``).
        self._passed = passed
        #: An urgent job's declared run (``Writer.run``): the one run it may write to.
        self._urgent_for = urgent_for
        #: Called right after the batch commits, in job order (``after_commit``).
        self.after: list[Callable[[], None]] = []

    def after_commit(self, fn: Callable[[], None]) -> None:
        """Call ``fn`` in the writer's task right after this job's batch commits (not if the
        job fails or the batch does), before the callers are woken: for a wake-up that must
        not wait for the caller's task to be scheduled (``services.approvals.resolve``). It
        must be quick and not block; an exception is logged."""
        self.after.append(fn)

    def _touch(self, run_id: str) -> None:
        """This job writes to ``run_id``: if a later write to it passed the job, or the job is
        urgent for another run, say so."""
        if self._urgent_for is not None and run_id != self._urgent_for:
            self._writer.strayed += 1
            log.warning(
                "a job taken ahead as urgent for run %s wrote to run %s", self._urgent_for, run_id
            )
        if self._passed is not None and run_id in self._passed:
            self._passed.discard(run_id)  # once per run
            self._writer.reordered += 1
            log.warning(
                "a job fenced on %s wrote to run %s after a later append to it had committed",
                self.fence,
                run_id,
            )

    async def _cursor(self, run_id: str) -> RunCursor:
        cur = self.cursors.get(run_id) or self._writer._cursor_for(run_id)
        if cur is None:
            cur = await read_cursor(self.conn, run_id)
        else:
            cur = RunCursor(cur.last_seq, cur.project_id, cur.attempt)
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
        self.cursors[run_id] = RunCursor(0, project_id)

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


def _failed(batch: list[Pending], exc: Exception) -> None:
    """A batch whose commit failed: nothing of it happened; every caller gets the error."""
    log.error("write batch of %d jobs failed", len(batch), exc_info=exc)
    for pending in batch:
        if not pending.future.done():
            pending.future.set_exception(exc)


def _refuse_status(values: dict[str, Any] | None) -> None:
    if values and "status" in values:
        raise ValueError("Run status changes go through store.runs.set_status(), not run values.")


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
        self._queue: asyncio.Queue[Pending | None] = asyncio.Queue()
        #: What the last batch's time bound left, in queue order: the next batch starts with it.
        self._carry: list[Pending] = []
        self._cursors: dict[str, RunCursor] = {}
        self._next_id = 1
        self._task: asyncio.Task[None] | None = None
        # One connection kept for the writer's whole life: checking one out of the pool for
        # every batch (and resetting it on return) costs more than a small batch's inserts.
        self._conn: AsyncConnection | None = None
        self.batches = 0
        #: SQLite only: the thread that commits batches of plain appends in one hop.
        self._direct: DirectAppends | None = None
        self._run_rows = sqlite_commit.RunRowUpdates(schema.runs, engine.dialect)
        #: Names this process in its NOTIFY payloads (PostgreSQL), so it skips its own events.
        self.token = token or uuid.uuid4().hex[:12]
        # PostgreSQL: the held lane (``store.held_lane``). Jobs found waiting for the job-order
        # lock, and what may not pass them, committed in queue order on a second connection
        # while this writer's task goes on committing the appends that may.
        self._held = HeldLane(self._run_held, batch_max)
        self._held_conn: AsyncConnection | None = None
        #: Urgent jobs waiting in the queue (a running batch takes no further job meanwhile).
        self._urgent_queued = 0
        #: The last batch was taken ahead (``write_order.lift``): the next one is owed a full turn.
        self._owed = False
        self._full_turn = False
        #: Urgent jobs taken ahead of writes queued before them (tests, diagnostics).
        self.lifted = 0
        #: Urgent jobs that wrote to another run than their own (expected: never).
        self.strayed = 0
        #: Jobs that wrote to a run whose later append had passed them (expected: never).
        self.reordered = 0

    @property
    def passed(self) -> int:
        """Appends committed before a job queued ahead of them (tests, diagnostics)."""
        return self._held.passed

    @property
    def engine(self) -> AsyncEngine:
        """The database this writer writes to."""
        return self._engine

    def _cursor_for(self, run_id: str) -> RunCursor | None:
        """This writer's numbering of a run; never on PostgreSQL, where others write too."""
        if self._engine.dialect.name == "postgresql":  # as ``shared``, whatever the lane
            return None
        return self._cursors.get(run_id)

    async def start(self) -> None:
        async with self._engine.connect() as conn:
            max_id = (await conn.execute(text("SELECT MAX(id) FROM events"))).scalar()
        self._next_id = int(max_id or 0) + 1
        self._direct = await DirectAppends.open(self._engine, self._run_rows)
        self._task = asyncio.create_task(self._loop(), name="codeyard-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._queue.put_nowait(None)
            await self._task
            self._task = None
        if self._direct is not None:
            await self._direct.close()
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

    async def run(
        self,
        fn: Callable[[Tx], Awaitable[T]],
        *,
        savepoint: bool = True,
        urgent_for: str | None = None,
    ) -> T:
        """Run ``fn`` inside the next batch's transaction; returns its result after commit.

        ``savepoint=False`` is for jobs that only emit events and set run values (no SQL of
        their own): they need no rollback point, which keeps event appends cheap.

        ``urgent_for``: a small job someone waits on (an approval's answer, a tool call's
        decision) that writes to this one run only (and to rows no other run's writes read,
        such as its approvals): it is committed ahead of what was queued before it, unless
        something queued before it may write to that run (see ``write_order.lift``).
        """
        pending = Pending(fn, savepoint, urgent_for=urgent_for)
        result: T = await self._submit(pending)
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
            Pending(Append(run_id, events, run_values), False)
        )
        return stored

    async def _submit(self, pending: Pending) -> Any:
        if self._task is None:
            raise RuntimeError("The writer is not running.")
        if pending.urgent_for is not None:
            self._urgent_queued += 1
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
                self._urgent_queued -= first.urgent_for is not None
            while not stopping and len(batch) < self._batch_max and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is None:
                    stopping = True
                    break
                batch.append(item)
                self._urgent_queued -= item.urgent_for is not None
            # After a batch taken ahead, the next one has its full turn: neither lifted from nor
            # cut for urgent jobs, so a stream of them never starves what they passed.
            self._full_turn, owed = self._owed, False
            if not self._full_turn:
                ahead, rest, lifted = lift(batch)
                self.lifted += lifted
                if ahead:  # committed on their own first; the rest is the next batch's start
                    self._carry, batch, owed = rest, ahead, True
            self._owed = owed
            await self._dispatch(batch)
        await self._held.wait()  # what waits for the job-order lock commits before stopping

    async def _dispatch(self, batch: list[Pending]) -> None:
        """Commit ``batch``; on PostgreSQL, what waits for the job-order lock goes to the held
        lane and the appends that may pass it are committed here meanwhile."""
        if not self._held.busy and await self._run_batch(batch, try_job_lock=True):
            return
        # The held lane is busy, or the job-order lock is and nothing of the batch ran.
        passing, holding = self._held.split(batch)
        if passing:
            await self._run_batch(passing)
        if holding:  # after ``passing`` committed: some were queued before these
            self._held.hold(holding)

    async def _run_held(self, batch: list[Pending]) -> bool:
        """One batch of the held lane, on its connection, waiting for the job-order lock."""
        return await self._run_batch(batch, held=True)

    async def _run_batch(
        self, batch: list[Pending], *, held: bool = False, try_job_lock: bool = False
    ) -> bool:
        """Commit ``batch`` (on the held lane's connection if ``held``). False: the job-order
        lock was busy (``try_job_lock``) and nothing of the batch ran."""
        if self._direct is not None and self._direct.takes(batch, self._cursors):
            direct = await self._direct.commit(batch, self._cursors, self._next_id)
            if isinstance(direct, Exception):
                _failed(batch, direct)
            else:
                self._committed(*direct)
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
                self._held.put_back(rest)
            else:
                self._carry[:0] = rest
            return True
        return True  # not reached: the last try returns

    async def _transact(
        self, batch: list[Pending], *, held: bool = False, try_job_lock: bool = False
    ) -> tuple[
        int,
        dict[str, RunCursor],
        list[StoredEvent],
        list[tuple[Pending, bool, Any]],
        list[Callable[[], None]],
    ]:
        """Run ``batch`` in one transaction; what ``_committed`` takes, once it committed."""
        outcomes: list[tuple[Pending, bool, Any]] = []
        after: list[Callable[[], None]] = []
        staged: list[StoredEvent] = []
        cursors: dict[str, RunCursor] = {}
        run_values: dict[str, dict[str, Any]] = {}
        until, ran_job = time.monotonic() + self._batch_seconds, False
        conn = await self._connection(held)
        shared = is_shared(conn)
        alone = len(batch) == 1
        async with conn.begin():
            pool = IdPool(conn, self._next_id)
            points = JobSavepoints(conn)  # a job's rollback point in a batch of several
            if shared:
                if any(not isinstance(p.fn, Append) for p in batch):  # before any row lock
                    if not try_job_lock:
                        await conn.execute(text(JOB_LOCK_SQL), {"key": JOB_ORDER_LOCK})
                    elif not (
                        await conn.execute(text(TRY_JOB_LOCK_SQL), {"key": JOB_ORDER_LOCK})
                    ).scalar():
                        raise _JobLockBusy  # rolls back: nothing was done
                await lock_runs(
                    conn, (p.fn.run_id for p in batch if isinstance(p.fn, Append)), cursors
                )  # the appends' rows, once per batch
            for pending in batch:
                if ran_job and (  # the rest starts the next batch
                    time.monotonic() >= until
                    or (self._urgent_queued and not held and not self._full_turn)
                ):  # an urgent job queued meanwhile goes ahead of the rest (``write_order.lift``)
                    break
                if isinstance(pending.fn, Append):
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
                    k: RunCursor(v.last_seq, v.project_id, v.attempt) for k, v in cursors.items()
                }
                tx = Tx(
                    conn,
                    self,
                    pool.next_id,
                    copies,
                    pending.fence,
                    pool,
                    pending.passed,
                    pending.urgent_for,
                )
                try:
                    if pending.savepoint and not alone:
                        await points.open()
                        try:
                            result = await pending.fn(tx)
                        except BaseException:
                            await points.roll_back()
                            raise
                        await points.release()
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
                after.extend(tx.after)
                outcomes.append((pending, True, result))
            if shared:
                await self._flush_shared(conn, staged, cursors, run_values)
            else:  # SQLite: with its COMMIT, in one trip; the ``begin`` block's commit is free
                await flush_and_commit(conn, staged, cursors, run_values, self._run_rows)
        return pool.next_id, cursors, staged, outcomes, after

    def _committed(
        self,
        next_id: int,
        cursors: dict[str, RunCursor],
        staged: list[StoredEvent],
        outcomes: list[tuple[Pending, bool, Any]],
        after: Sequence[Callable[[], None]] = (),
    ) -> None:
        """After a commit: keep the numbering, hand the events to the hub, call the jobs'
        ``after_commit`` callbacks, wake the callers."""
        self._next_id = next_id
        self._cursors.update(cursors)
        self.batches += 1
        if staged:
            try:
                self._on_commit(staged)
            except Exception:  # a broken subscriber must not lose the writer
                log.exception("publishing %d events failed", len(staged))
        for fn in after:
            try:
                fn()
            except Exception:  # nor a broken callback
                log.exception("an after-commit callback failed")
        for pending, ok, value in outcomes:
            if pending.future.done():
                continue
            if ok:
                pending.future.set_result(value)
            else:
                pending.future.set_exception(value)

    async def _number(
        self,
        conn: AsyncConnection,
        a: Append,
        cursors: dict[str, RunCursor],
        pool: IdPool,
        fence: fencing.Fence | None,
    ) -> list[StoredEvent]:
        """Number an append's events (what ``Tx.emit`` does, without a ``Tx``)."""
        cur = cursors.get(a.run_id)
        if cur is None:  # first use in this batch: a copy, kept only if the batch commits
            known = self._cursor_for(a.run_id)
            if known is None:
                cur = await read_cursor(conn, a.run_id)
            else:
                cur = RunCursor(known.last_seq, known.project_id, known.attempt)
            cursors[a.run_id] = cur
        fencing.check(fence, a.run_id, cur.attempt)
        before = pool.next_id
        ids = await pool.take(len(a.events))
        try:
            return stamp(a, cur, ids)
        except Exception:  # data that cannot be serialized: its ids go back, ids stay gapless
            pool.next_id = before
            raise

    async def _flush_shared(
        self,
        conn: AsyncConnection,
        staged: list[StoredEvent],
        cursors: dict[str, RunCursor],
        run_values: dict[str, dict[str, Any]],
    ) -> None:
        """PostgreSQL: the run rows updated, then, under the commit-order lock (held from here
        to the commit), the batch's ids drawn and given to its events in the order they were
        numbered, and the events inserted and announced (see the module's docstring)."""
        await touch_runs_shared(conn, cursors, run_values)
        if not staged:
            return
        await self._insert_numbered(conn, staged)

    async def _insert_numbered(self, conn: AsyncConnection, staged: list[StoredEvent]) -> None:
        """Under the commit-order lock (taken here, released by the commit): give ``staged``
        their ids, ascending in order, insert and announce them."""
        await insert_numbered(conn, staged, self.token)
