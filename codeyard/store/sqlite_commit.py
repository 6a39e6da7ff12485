"""SQLite commits in one hop: a thread of the writer's own with a stdlib ``sqlite3`` connection.

Through aiosqlite and SQLAlchemy a commit of the writer costs six round trips to the driver's
thread whatever the batch holds (the ``BEGIN`` SQLAlchemy issues through its cursor wrapper
alone is three; then the INSERT, the run-row UPDATE and the COMMIT), ~120 us each on the
benchmark machine: the fixed cost that made every awaited append slow (``bench/RESULTS.md``,
"Event pipeline"). Here a batch that only appends events (the rows numbered, the run-row
values converted, on the event loop) is handed to one thread once; the thread commits it and
wakes the awaiting coroutine with one ``call_soon_threadsafe``.

The thread owns its connection for its whole life (a stdlib connection is used by one thread
at a time) and opens it with the pragmas ``store.db.create_engine`` gives every connection, so
durability is the engine's: WAL, ``synchronous=NORMAL``, a 30 s busy timeout. Batches with
jobs of their own SQL keep the SQLAlchemy connection (``store.writer``); the writer runs one
batch at a time, so the two connections never write at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import ClauseElement

from codeyard.store.db import SQLITE_PRAGMAS

log = logging.getLogger(__name__)


Row = tuple[Any, ...]
Statement = tuple[str, Row]


def file_path(engine: AsyncEngine) -> str | None:
    """The database file of a SQLite engine; None for PostgreSQL, in-memory databases and URI
    options (a second connection would not see the same database, or not open it the same way).
    """
    url = engine.url
    if url.get_backend_name() != "sqlite" or url.query:
        return None
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return database


class RunRowUpdates:
    """The run-row UPDATE of a batch as plain SQL, its values converted by the same SQLAlchemy
    bind processors an ``update(runs).values(...)`` would use (JSON columns serialized, SQL NULL
    where SQLAlchemy writes one), so both paths store the same bytes."""

    _FIXED = frozenset({"id", "last_seq", "updated_at", "status"})

    def __init__(self, table: Table, dialect: Dialect) -> None:
        self._table = table.name
        self._convert: dict[str, tuple[str, Callable[[Any], Any] | None, bool]] = {}
        for column in table.columns:
            impl = column.type.dialect_impl(dialect)
            self._convert[column.key] = (
                column.name,
                impl.bind_processor(dialect),
                column.type.should_evaluate_none,
            )
        self._touch = f"UPDATE {self._table} SET last_seq = ?, updated_at = ? WHERE id = ?"

    def covers(self, values: Mapping[str, Any] | None) -> bool:
        """Whether these values can be written here: known columns, plain values (unknown
        columns and SQL expressions take the SQLAlchemy path, which reports or renders them)."""
        return not values or all(
            k in self._convert and k not in self._FIXED and not isinstance(v, ClauseElement)
            for k, v in values.items()
        )

    def statement(
        self, run_id: str, last_seq: int, updated_at: str, values: Mapping[str, Any]
    ) -> Statement:
        if not values:
            return self._touch, (last_seq, updated_at, run_id)
        params: list[Any] = [last_seq, updated_at]
        sets = ["last_seq = ?", "updated_at = ?"]
        for key, value in values.items():
            name, process, evaluate_none = self._convert[key]
            if value is not None or evaluate_none:
                value = process(value) if process is not None else value
            sets.append(f'"{name}" = ?')
            params.append(value)
        params.append(run_id)
        return f"UPDATE {self._table} SET {', '.join(sets)} WHERE id = ?", tuple(params)


_Done = Callable[[BaseException | None], None]


class CommitThread:
    """One daemon thread committing batches handed to it, one at a time, in arrival order."""

    def __init__(self, path: str, insert_sql: str) -> None:
        self._path = path
        self._insert = insert_sql
        self._inbox: queue.SimpleQueue[tuple[Sequence[Row], Sequence[Statement], _Done] | None]
        self._inbox = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Future[None] | None = None

    async def start(self) -> None:
        """Start the thread; returns once its connection is open (or raises why it is not)."""
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        self._stopped = loop.create_future()
        self._thread = threading.Thread(
            target=self._main,
            args=(_waker(loop, ready), _waker(loop, self._stopped)),
            name="codeyard-sqlite-writer",
            daemon=True,
        )
        self._thread.start()
        await ready

    async def stop(self) -> None:
        """Finish what was handed over, close the connection and end the thread."""
        if self._thread is None or self._stopped is None:
            return
        self._inbox.put(None)
        with contextlib.suppress(Exception):
            await self._stopped
        self._thread = None

    def commit(self, rows: Sequence[Row], updates: Sequence[Statement]) -> asyncio.Future[None]:
        """Insert ``rows`` into events and run ``updates`` in one transaction; the future is
        done once it is committed (or holds the error, with nothing of it written)."""
        if self._thread is None:
            raise RuntimeError("The SQLite commit thread is not running.")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._inbox.put((rows, updates, _waker(future.get_loop(), future)))
        return future

    def _main(self, ready: _Done, stopped: _Done) -> None:
        try:
            conn = sqlite3.connect(
                self._path, timeout=30, isolation_level=None, check_same_thread=True
            )
            for pragma in SQLITE_PRAGMAS:
                conn.execute(pragma)
        except BaseException as exc:  # reported to start(); the thread ends here
            ready(exc)
            stopped(None)
            return
        ready(None)
        try:
            while (work := self._inbox.get()) is not None:
                rows, updates, done = work
                try:
                    self._write(conn, rows, updates)
                except BaseException as exc:  # the batch's failure, reported to its awaiter
                    done(exc)
                else:
                    done(None)
        finally:
            conn.close()
            stopped(None)

    def _write(
        self, conn: sqlite3.Connection, rows: Sequence[Row], updates: Sequence[Statement]
    ) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            if rows:
                conn.executemany(self._insert, rows)
            for sql, params in updates:
                conn.execute(sql, params)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise


def _waker(loop: asyncio.AbstractEventLoop, future: asyncio.Future[None]) -> _Done:
    """A callable for the thread that settles ``future`` on its loop (one wake-up)."""

    def settle(error: BaseException | None) -> None:
        if future.done():  # cancelled by a caller that stopped waiting
            return
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)

    def done(error: BaseException | None) -> None:
        try:
            loop.call_soon_threadsafe(settle, error)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            log.debug("sqlite commit finished after its event loop closed")

    return done
