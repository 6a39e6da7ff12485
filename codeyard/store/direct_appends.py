"""SQLite's short path for plain appends: numbered in the writer's task, committed in one hop by
the writer's own commit thread (``store.sqlite_commit``), SQLAlchemy skipped.

Agent events are most of what the writer commits, and on SQLite a batch of them through
SQLAlchemy paid the driver's round trips whatever it held (``bench/RESULTS.md``, "Event
pipeline"). A batch that holds only appends, to runs the writer has numbered, setting run
columns the thread can convert, is taken here instead; anything else (jobs, the first append to
a run after a restart, an unknown column) stays on the SQLAlchemy path, which reads what it
lacks and reports what is wrong. The writer still runs one batch at a time, so numbering,
commit order and the hand-off after commit are the same on both paths: this module only
numbers and commits, the writer keeps the numbering (``Writer._committed``) and reports a
failed batch.

Apart from ``store.writer`` because it shares nothing of the batching loop (no jobs, no
savepoints, no PostgreSQL locks), only the numbering of one append (:func:`stamp`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from codeyard.domain.events import StoredEvent, utc_now
from codeyard.store import fencing, sqlite_commit
from codeyard.store.event_sql import RunCursor, event_rows, insert_events_sql
from codeyard.store.write_order import Append, Pending

#: What a committed batch gives ``Writer._committed``: the next free event id, the numbering
#: of its runs, its events, and one outcome per item (its ``Pending``, ok, result or error).
Committed = tuple[int, dict[str, RunCursor], list[StoredEvent], list[tuple[Pending, bool, Any]]]


def stamp(a: Append, cur: RunCursor, ids: Sequence[int]) -> list[StoredEvent]:
    """An append's events numbered: the given ids, seqs after the run's last (the cursor moves
    on). Both paths number appends this way (``Writer._number`` on SQLAlchemy's). Raises
    before the cursor moves if an event's data cannot be serialized (its ``data_json`` is
    first made here)."""
    ts = utc_now()
    seq, project_id, run_id = cur.last_seq, cur.project_id, a.run_id
    stored = [
        StoredEvent(ids[k], run_id, project_id, seq + k + 1, e.type, ts, e.data_json)
        for k, e in enumerate(a.events)
    ]
    cur.last_seq += len(stored)
    return stored


class DirectAppends:
    """The commit thread of a SQLite file and what decides which batches it takes."""

    def __init__(
        self, thread: sqlite_commit.CommitThread, run_rows: sqlite_commit.RunRowUpdates
    ) -> None:
        #: The thread with its own ``sqlite3`` connection (tests spy on its ``commit``).
        self.thread = thread
        self._run_rows = run_rows

    @classmethod
    async def open(
        cls, engine: AsyncEngine, run_rows: sqlite_commit.RunRowUpdates
    ) -> DirectAppends | None:
        """Start the commit thread of ``engine``'s file; None where there is no file a second
        connection would open the same way (PostgreSQL, in-memory SQLite, URI options)."""
        path = sqlite_commit.file_path(engine)
        if path is None:
            return None
        thread = sqlite_commit.CommitThread(path, insert_events_sql("qmark"))
        await thread.start()
        return cls(thread, run_rows)

    async def close(self) -> None:
        await self.thread.stop()

    def takes(self, batch: list[Pending], known: Mapping[str, RunCursor]) -> bool:
        """Whether the commit thread can take this batch: plain appends only, to runs the
        writer has numbered (``known``), setting columns it knows (anything else takes
        SQLAlchemy, which reads what it lacks and reports what is wrong as before)."""
        for pending in batch:
            fn = pending.fn
            if not isinstance(fn, Append) or fn.run_id not in known:
                return False
            if fn.run_values and not self._run_rows.covers(fn.run_values):
                return False
        return True

    async def commit(
        self, batch: list[Pending], known: Mapping[str, RunCursor], next_id: int
    ) -> Committed | Exception:
        """Number ``batch`` (taken: :meth:`takes`) from ``next_id`` and the writer's numbering
        ``known`` (copied, kept only if the batch commits), as ``Writer._number`` does, then
        commit its rows and run-row updates in one hop. An append for a stale attempt, or with
        events that cannot be serialized (``NewEvent.data_json`` raising), is refused alone, its
        ids and seqs left to the next; run values that cannot be converted
        (``RunRowUpdates.statement``) or a failed commit return the error (nothing of the batch
        happened, the numbering is the writer's as before), for the writer to report to every
        caller, as a failed flush on SQLAlchemy's path is. Raising here would end the writer's
        task, and every write with it."""
        outcomes: list[tuple[Pending, bool, Any]] = []
        staged: list[StoredEvent] = []
        cursors: dict[str, RunCursor] = {}
        run_values: dict[str, dict[str, Any]] = {}
        for pending in batch:
            a = pending.fn
            assert isinstance(a, Append)  # checked by ``takes``
            cur = cursors.get(a.run_id)
            if cur is None:  # a copy, kept only if the batch commits
                was = known[a.run_id]
                cur = cursors[a.run_id] = RunCursor(was.last_seq, was.project_id, was.attempt)
            try:
                fencing.check(pending.fence, a.run_id, cur.attempt)
                stored = stamp(a, cur, range(next_id, next_id + len(a.events)))
            except Exception as exc:  # a stale attempt, or data that cannot be serialized
                outcomes.append((pending, False, exc))  # refused alone; ``cur`` did not move
                continue
            next_id += len(stored)
            staged.extend(stored)
            values = run_values.setdefault(a.run_id, {})
            if a.run_values:
                values.update(a.run_values)
            outcomes.append((pending, True, stored))
        rows = event_rows(staged)
        now = utc_now()
        try:  # a value the run row's column cannot take fails the batch, as on SQLAlchemy's path
            updates = [
                self._run_rows.statement(run_id, cursors[run_id].last_seq, now, values)
                for run_id, values in run_values.items()
            ]
            await self.thread.commit(rows, updates)
        except Exception as exc:  # nothing of this batch happened
            return exc
        return next_id, cursors, staged, outcomes
