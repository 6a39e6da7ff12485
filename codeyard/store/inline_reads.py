"""SQLite reads sent on the event loop's own thread (issue 15).

A :class:`~codeyard.store.statement.Statement` read given the engine (one statement, outside
any transaction) still makes a trip to an aiosqlite thread: a pool check-out, a queue put that
wakes the thread, the thread's wake-up of the event loop when done, a greenlet switch. The
statements sent that way are small reads by key or index (a run's row, an approval's run, a
lease), which SQLite answers in a few microseconds from its page cache; the trip costs ~100
µs of CPU more, spread over two threads (``bench/read_cost.py``: ``Statement on the
engine`` against ``Statement inline``).

Here such a read runs where it is awaited, on a connection of the calling thread's own (a
database file in WAL mode lets a reader in while the writer writes, and a read sees what was
committed when it began, as the pooled connection's read outside a transaction does). What
keeps it safe for the event loop and for the data:

- the connection is ``query_only`` (it cannot write) and has no busy timeout: if SQLite would
  have to wait for a lock (a database not in WAL mode, a checkpoint resetting the log), the
  read is refused at once and the caller sends it through the pool as before
  (:meth:`InlineReader.read` returns None), never blocking the loop;
- the statement is stepped to its end and its cursor closed, so no read transaction is left
  open to hold back the writer's checkpoints;
- any SQLite error sends the statement through the pool, where it is raised as SQLAlchemy
  raises driver errors.

The engine's ``before_cursor_execute`` listeners see each statement as before (with no
connection nor cursor; a read refused here is seen again when the pool sends it).

Only file databases get one (an in-memory database is private to its one pooled connection).
Each thread that reads gets its own connection (``sqlite3`` connections are not shared across
threads), closed when a new one is opened after its thread ended, or by the engine's
``dispose``.
"""

from __future__ import annotations

import sqlite3
import threading
import weakref
from collections.abc import Sequence
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

#: What a read gives back: its rows, and the driver's rowcount.
Outcome = tuple[list[Any], int]


class InlineReader:
    """Connections to one database file, one per thread that reads through it."""

    def __init__(self, database: str, *, uri: bool = False) -> None:
        self._database = database
        self._uri = uri
        self._lock = threading.Lock()
        self._by_thread: dict[int, sqlite3.Connection] = {}
        self.closed = False

    def _connection(self) -> sqlite3.Connection:
        ident = threading.get_ident()
        found = self._by_thread.get(ident)
        if found is not None:
            return found
        conn = sqlite3.connect(
            self._database,
            uri=self._uri,
            timeout=0,
            isolation_level=None,  # autocommit: each read is its own transaction
            check_same_thread=False,  # used by its thread only; closed by ``close``
        )
        try:
            conn.execute("PRAGMA query_only=1")
            conn.execute("PRAGMA busy_timeout=0")
        except BaseException:
            conn.close()
            raise
        with self._lock:
            if self.closed:
                conn.close()
                raise sqlite3.ProgrammingError("the engine was disposed")
            # A thread that ended left its connection here: closed now, so that threads
            # coming and going (a loop per thread) do not pile them up until ``dispose``.
            alive = {thread.ident for thread in threading.enumerate()}
            gone = [i for i in self._by_thread if i not in alive]
            left = [self._by_thread.pop(i) for i in gone]
            self._by_thread[ident] = conn
        for old in left:
            old.close()
        return conn

    def read(self, sql: str, params: Sequence[Any]) -> Outcome | None:
        """The statement's rows and rowcount, or None: it could not be read here at once (a
        lock held, any SQLite error); the caller sends it through the pool."""
        if self.closed:
            return None
        try:
            cursor = self._connection().execute(sql, params)
            try:
                rows = cursor.fetchall()
                return rows, cursor.rowcount
            finally:
                cursor.close()
        except sqlite3.Error:
            return None

    def close(self) -> None:
        with self._lock:
            self.closed = True
            connections, self._by_thread = list(self._by_thread.values()), {}
        for conn in connections:
            conn.close()


_READERS: weakref.WeakKeyDictionary[Engine, InlineReader] = weakref.WeakKeyDictionary()


def attach(engine: AsyncEngine, database: str, *, uri: bool = False) -> None:
    """Give ``engine`` (SQLite, a database file) a reader on the calling threads."""
    reader = InlineReader(database, uri=uri)
    sync = engine.sync_engine
    _READERS[sync] = reader

    @event.listens_for(sync, "engine_disposed")
    def _disposed(_engine: Engine) -> None:
        reader.close()
        _READERS.pop(sync, None)


def reader_of(engine: AsyncEngine) -> InlineReader | None:
    return _READERS.get(engine.sync_engine)


def is_file(filename: str, *, uri: bool) -> bool:
    """Whether SQLite's ``filename`` (as the dialect gives it to ``sqlite3.connect``) is a
    database file others can open: not ``:memory:``, not an in-memory URI."""
    if filename in ("", ":memory:"):
        return False
    return not (uri and ("mode=memory" in filename or filename.startswith("file::memory:")))
